"""Magics, shell escapes, matplotlib's inline backend and %pip."""


import pytest

from tests.kernel.kernels import (
    Kernel,
    run,
    stdout_of,
)

pytestmark = [pytest.mark.vm, pytest.mark.timeout(240)]


def test_magics_and_shell_escapes(kernel: Kernel) -> None:
    _, kc = kernel
    _, msgs = run(kc, "%time x = sum(range(10))\n!echo from-a-shell && id -u")
    out = stdout_of(msgs)
    assert "Wall time" in out and "from-a-shell" in out and "1000" in out
    _, msgs = run(kc, "%%capture captured\nprint('hidden')")
    assert stdout_of(msgs) == ""
    assert stdout_of(run(kc, "print(captured.stdout.strip())")[1]) == "hidden\n"
    assert "x" in stdout_of(run(kc, "%who")[1])
    assert "Stored 'x'" in stdout_of(run(kc, "%store x")[1])
    assert stdout_of(run(kc, "%%bash\necho $BASH_VERSION | cut -c1")[1]) == "5\n"


def test_matplotlib_shows_inline_png(kernel: Kernel) -> None:
    _, kc = kernel
    _, msgs = run(kc, "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.show()",
                  timeout=120)
    images = [m["content"]["data"] for m in msgs if m["msg_type"] == "display_data"]
    assert images and images[0]["image/png"].startswith("iVBORw0KGgo")


def test_matplotlib_magics_draw_inline_and_gui_toolkits_are_refused(kernel: Kernel) -> None:
    # A bare %matplotlib takes matplotlib's default backend, the inline one, as in ipykernel.
    _, kc = kernel
    _, msgs = run(kc, "%matplotlib", timeout=120)
    assert "matplotlib_inline" in stdout_of(msgs)
    reply, msgs = run(kc, "%matplotlib inline\nimport matplotlib.pyplot as plt\n"
                          "plt.plot([2, 1])\nplt.show()", timeout=120)
    assert reply["content"]["status"] == "ok", reply["content"]
    assert any("image/png" in m["content"].get("data", {}) for m in msgs)
    _, msgs = run(kc, "%gui tk")
    stderr = "".join(m["content"]["text"] for m in msgs
                     if m["msg_type"] == "stream" and m["content"]["name"] == "stderr")
    assert "no display" in stderr


def test_pip_magic_and_command_say_what_the_image_has_and_what_it_lacks(kernel: Kernel) -> None:
    _, kc = kernel
    reply, msgs = run(kc, "%pip install -q numpy matplotlib>=3")
    assert reply["content"]["status"] == "ok"
    assert "Already in the sandbox image: numpy" in stdout_of(msgs)
    reply, msgs = run(kc, "%pip install numpy no-such-package-xyz")
    assert reply["content"]["ename"] == "UsageError"
    assert "no-such-package-xyz" in reply["content"]["evalue"]
    assert "error" not in [m["msg_type"] for m in msgs]  # printed to stderr, as ipykernel
    _, msgs = run(kc, "!pip install numpy\n!pip3 install no-such-package-xyz")
    text = "".join(m["content"]["text"] for m in msgs if m["msg_type"] == "stream")
    assert "Already in the sandbox image: numpy" in text
    assert "does not have: no-such-package-xyz" in text
