"""%pip, !pip and python -m pip from a wheelhouse on the host, in a real VM with no network:
the wheels are made here, one depending on another, and each spelling installs a package that
the next cell imports."""

import base64
import hashlib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox_kernel import paths
from tests.kernel.kernels import Kernel, run, running_kernel, stdout_of

pytestmark = [pytest.mark.vm, pytest.mark.timeout(900)]

PIP_TIMEOUT = 180  # pip's own start-up, emulated, takes seconds
# This module's first kernel may boot cold and take the session's snapshot: minutes on a busy
# two-core host under TCG.
FIRST_START_TIMEOUT = 600


def make_wheel(folder: Path, name: str, version: str, code: str,
               requires: tuple[str, ...] = ()) -> Path:
    """A pure-Python wheel with one module, written as the wheel format says (no build tool,
    no network)."""
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}.py": code,
        f"{info}/METADATA": "Metadata-Version: 2.1\n" f"Name: {name}\nVersion: {version}\n"
                            + "".join(f"Requires-Dist: {r}\n" for r in requires),
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\n"
                         "Tag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    files[f"{info}/RECORD"] = "\n".join([*record, f"{info}/RECORD,,"]) + "\n"
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return wheel


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("wheelhouse")
    make_wheel(folder, "sbx_base", "1.0", "VALUE = 'base 1.0'\n")
    make_wheel(folder, "sbx_app", "2.0", "import sbx_base\n\n"
               "def hello():\n    return 'app on ' + sbx_base.VALUE\n", requires=("sbx_base",))
    for n in ("magic", "bang", "module"):
        make_wheel(folder, f"sbx_{n}", "0.1", f"SPELLING = '{n}'\n")
    return folder


@pytest.fixture(scope="module")
def plain_kernel() -> Iterator[Kernel]:
    with running_kernel(first_cell_timeout=FIRST_START_TIMEOUT) as both:
        yield both


@pytest.fixture(scope="module")
def kernel(plain_kernel: Kernel, wheelhouse: Path) -> Iterator[Kernel]:
    # The plain kernel's start has left a memory snapshot (or restored one): this kernel
    # restores it, and gets its wheelhouse after the restore, as every kernel does.
    assert any(paths.snapshots_dir().glob("*/ram"))
    with running_kernel(first_cell_timeout=FIRST_START_TIMEOUT,
                        extra_arguments=[f"--SandboxKernel.wheelhouse={wheelhouse}"]) as both:
        yield both


def test_without_a_wheelhouse_pip_says_what_the_image_has_and_lacks(
        plain_kernel: Kernel) -> None:
    _, kc = plain_kernel
    reply, _ = run(kc, "%pip install sbx_app")
    assert reply["content"]["ename"] == "UsageError"
    assert "has no network" in reply["content"]["evalue"]
    assert "does not have: sbx_app" in reply["content"]["evalue"]
    _, msgs = run(kc, "!pip install numpy sbx_app; echo status $?")
    text = _text(msgs)
    assert "does not have: sbx_app" in text and "status 1" in text, text


def _text(msgs: list[dict[str, object]]) -> str:
    return "".join(m["content"]["text"] for m in msgs  # type: ignore[index]
                   if m["msg_type"] == "stream")


def test_each_spelling_installs_what_the_next_cell_imports(kernel: Kernel) -> None:
    _, kc = kernel
    for cell in ("%pip install sbx_magic", "!pip install sbx_bang",
                 "!python -m pip install sbx_module"):
        reply, msgs = run(kc, cell, timeout=PIP_TIMEOUT)
        assert reply["content"]["status"] == "ok", reply["content"]
        assert "Successfully installed" in _text(msgs), _text(msgs)
    reply, msgs = run(kc, "import sbx_magic, sbx_bang, sbx_module\n"
                          "print(sbx_magic.SPELLING, sbx_bang.SPELLING, sbx_module.SPELLING,"
                          " sbx_magic.__file__)")
    assert stdout_of(msgs) == ("magic bang module "
                               "/home/user/.local/lib/python3.11/site-packages/sbx_magic.py\n"
                               ), (reply, msgs)


def test_a_dependency_comes_from_the_wheelhouse_too(kernel: Kernel) -> None:
    _, kc = kernel
    _, msgs = run(kc, "%pip install sbx_app", timeout=PIP_TIMEOUT)
    assert "Successfully installed sbx_app-2.0 sbx_base-1.0" in _text(msgs), _text(msgs)
    _, msgs = run(kc, "import sbx_app\nprint(sbx_app.hello())")
    assert stdout_of(msgs) == "app on base 1.0\n"


def test_a_package_the_wheelhouse_lacks_is_named_with_what_it_has(kernel: Kernel) -> None:
    _, kc = kernel
    reply, _ = run(kc, "%pip install sbx_nowhere")
    assert reply["content"]["ename"] == "UsageError"
    why = reply["content"]["evalue"]
    assert "sbx_nowhere" in why and "sbx_app" in why and "/opt/wheelhouse" in why, why
    _, msgs = run(kc, "!pip install sbx_nowhere; echo status $?", timeout=PIP_TIMEOUT)
    text = _text(msgs)
    assert "Not in the wheelhouse" in text and "status 1" in text, text
    # The image's own packages need no wheel.
    _, msgs = run(kc, "%pip install numpy", timeout=PIP_TIMEOUT)
    assert "Requirement already satisfied: numpy" in _text(msgs), _text(msgs)


def test_the_wheelhouse_is_read_only_and_the_banner_names_it(
        kernel: Kernel, wheelhouse: Path) -> None:
    _, kc = kernel
    _, msgs = run(kc, "import os\ntry:\n    open('/opt/wheelhouse/x', 'w')\n"
                      "except OSError as e:\n    print(e.errno == 30)\n"
                      "print(sorted(os.listdir('/opt/wheelhouse'))[0])\n%sandbox")
    out = stdout_of(msgs)
    assert out.startswith("True\nsbx_app-2.0-py3-none-any.whl\n"), out
    assert f"{wheelhouse} (on the host) is the wheelhouse" in out
    assert not (wheelhouse / "x").exists()
