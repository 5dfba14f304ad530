from pathlib import Path

import pytest

from sandbox_kernel.guest.packages import NotInstallable, installed, main, report, requirements


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
