import importlib
import site
import sys
from pathlib import Path

import pytest

from sandbox_kernel.guest.packages import (
    NotInstallable,
    installed,
    main,
    pip_command,
    report,
    requirements,
    use_user_site,
    wheel_names,
)


def test_requirements_skips_options_and_their_values() -> None:
    args = ["-q", "-U", "numpy>=1.20", "--index-url", "https://example.invalid/simple",
            "Pillow[extra]==10.0", "--no-deps", "typing_extensions"]
    assert requirements(args) == ["numpy", "Pillow", "typing_extensions"]


def test_requirements_reads_a_requirements_file(tmp_path: Path) -> None:
    file = tmp_path / "requirements.txt"
    file.write_text("# pinned\nmatplotlib==3.6  # plots\n\n-c constraints.txt\nnumpy\n")
    assert requirements(["-r", str(file), "ipywidgets"]) == ["matplotlib", "numpy", "ipywidgets"]


def test_a_missing_requirements_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(NotInstallable, match="no requirements file"):
        requirements(["-r", str(tmp_path / "absent.txt")])


def test_installed_finds_this_environment_s_distributions_by_canonical_name() -> None:
    name, version = installed()["typing-extensions"]
    assert name.lower().replace("_", "-") == "typing-extensions" and version


def test_install_of_what_is_there_succeeds_and_names_the_rest(capsys: pytest.CaptureFixture[str]
                                                               ) -> None:
    assert "Already in the sandbox image: typing_extensions" in report(
        ["install", "-q", "typing_extensions>=4"])
    assert main(["install", "typing-extensions", "no-such-package-xyz"]) == 1
    assert "does not have: no-such-package-xyz." in capsys.readouterr().err
    assert main(["show", "typing_extensions"]) == 0
    assert capsys.readouterr().out.startswith("Name: typing_extensions\nVersion: ")


def _wheelhouse(tmp_path: Path) -> Path:
    for wheel in ("Sbx_App-2.0-py3-none-any.whl", "sbx.base-1.0-py3-none-any.whl"):
        (tmp_path / wheel).write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not a wheel")
    return tmp_path


def test_with_a_wheelhouse_pip_runs_for_what_it_or_the_image_has(tmp_path: Path) -> None:
    folder = _wheelhouse(tmp_path)
    assert wheel_names(folder) == {"sbx-app": "Sbx_App", "sbx-base": "sbx.base"}
    args = ["install", "-q", "sbx-app>=2", "SBX_BASE", "typing_extensions", "./local.whl"]
    assert pip_command(args, folder) == [sys.executable, "-m", "pip", *args]
    assert pip_command(["list"], folder)[-1] == "list"


def test_what_the_wheelhouse_lacks_is_named_with_what_it_has(tmp_path: Path) -> None:
    with pytest.raises(NotInstallable) as caught:
        pip_command(["install", "sbx-app", "no-such-package-xyz"], _wheelhouse(tmp_path),
                    "%pip")
    why = str(caught.value)
    assert "nor in the sandbox image: no-such-package-xyz." in why
    assert "The wheelhouse has sbx.base, Sbx_App" in why and "c.SandboxKernel.wheelhouse" in why


def test_a_user_site_made_after_the_start_goes_on_sys_path_before_the_image_s(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user_site = tmp_path / "site-packages"
    monkeypatch.setattr(site, "getusersitepackages", lambda: str(user_site))
    monkeypatch.setattr(sys, "path", ["", "/usr/lib/python3.11", "/x/dist-packages"])
    use_user_site()
    assert str(user_site) not in sys.path  # not there yet
    user_site.mkdir()
    (user_site / "sbx_fresh.py").write_text("VALUE = 42\n")
    use_user_site()
    assert sys.path == ["", "/usr/lib/python3.11", str(user_site), "/x/dist-packages"]
    module = importlib.import_module("sbx_fresh")
    assert module.VALUE == 42
    sys.modules.pop("sbx_fresh")
