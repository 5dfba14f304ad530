"""Images from recipe files, end to end: built by the CLI into this session's folders,
installed as a kernelspec, run by a kernel; a recipe that cannot be built says why; and a
second build of a recipe gives the same files, bit for bit."""

import filecmp
import json
import os
from pathlib import Path

import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

from tests.images.conftest import Built, folders, sandbox_kernel
from tests.kernel.kernels import BOOT_TIMEOUT, run, stdout_of

pytestmark = [pytest.mark.vm, pytest.mark.network, pytest.mark.timeout(900)]

_PRELOADED = "import sys; print(sorted({'tabulate', 'humanize'} & set(sys.modules)))"
_IMPORTS = """
import humanize, six, tabulate
print(humanize.naturalsize(10**6), six.__version__, tabulate.__file__, humanize.__file__)
"""


def test_a_recipe_image_runs_in_a_kernel_bound_to_it(small_image: Built, tmp_path: Path
                                                     ) -> None:
    spec = json.loads((small_image.folder("test-small") / "manifest.json").read_text())
    assert spec["preload"] == ["tabulate"] and "python3-tabulate" in spec["packages"]
    assert {w["name"].lower() for w in spec["wheels"]} >= {"humanize", "six", "pydantic"}
    proc = sandbox_kernel(small_image.env, "install", "--prefix", str(tmp_path), "--image",
                          "test-small")
    assert proc.returncode == 0, proc.stderr
    kernels = KernelSpecManager(kernel_dirs=[str(tmp_path / "share/jupyter/kernels")])
    km = KernelManager(kernel_name="sandbox-test-small", kernel_spec_manager=kernels)
    # The session's own cache (snapshots, the accelerator verdict); the test's images.
    km.start_kernel(env={**os.environ, "SANDBOX_KERNEL_IMAGES_DIR": str(small_image.images)})
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=BOOT_TIMEOUT)
        # The first cell waits for the VM: a cold boot that takes the snapshot, then a restore.
        reply, msgs = run(kc, _PRELOADED, timeout=BOOT_TIMEOUT)
        assert stdout_of(msgs) == "['tabulate']\n"  # the recipe's preload, and only that
        reply, msgs = run(kc, _IMPORTS, timeout=120)
        out = stdout_of(msgs)
        assert reply["content"]["status"] == "ok", reply["content"]
        # Debian's module from Debian's folder, the wheels from the one before it on sys.path.
        assert out.split()[:3] == ["1.0", "MB", "1.17.0"], out
        assert "/usr/lib/python3/dist-packages/tabulate" in out
        assert "/usr/local/lib/python3.11/dist-packages/humanize" in out
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


@pytest.mark.parametrize(("recipe", "says"), [
    ('pypi = ["sandbox-kernel-no-such-package-zq"]',
     "there is no package 'sandbox-kernel-no-such-package-zq' on the package index"),
    ('debian = ["python3-no-such-thing"]',
     "Debian bookworm has no package (or version) python3-no-such-thing"),
    ('preload = ["json", "pandsa.core", "pydantic"]',
     "the recipe preloads pandsa, which the image does not have"),
])
def test_a_recipe_that_cannot_be_built_says_why(recipe: str, says: str, tmp_path: Path
                                                ) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(f'name = "test-bad"\n{recipe}\n')
    env = folders("bad")
    proc = sandbox_kernel(env, "image", "build", "--recipe", str(path))
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert says in proc.stderr and "Traceback" not in proc.stderr
    images = Path(env["SANDBOX_KERNEL_IMAGES_DIR"])
    assert not list(images.glob("test-bad-*"))  # no half-built image left behind


def test_two_builds_of_a_recipe_are_the_same_bit_for_bit(small_image: Built) -> None:
    """Another build in other folders (so nothing is reused but the downloads): every file
    of the image and its initramfs is the same; only build.json tells them apart."""
    env = folders("small-again")
    proc = sandbox_kernel(env, "image", "build", "--recipe",
                          str(Path(__file__).parent / "small.toml"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    first = small_image.folder("test-small")
    second = Built(env, Path(env["SANDBOX_KERNEL_IMAGES_DIR"])).folder("test-small")
    assert first.name == second.name
    files = sorted(str(p.relative_to(first)) for p in first.rglob("*") if p.is_file())
    assert {"root.erofs", "vmlinux", "busybox", "manifest.json", "build.json"} <= set(files)
    files.remove("build.json")
    match, mismatch, errors = filecmp.cmpfiles(first, second, files, shallow=False)
    assert (mismatch, errors) == ([], []) and len(match) == len(files)
    assert json.loads((second / "build.json").read_text())["build_seconds"] > 0
    # The initramfs, made from the image for this agent: the same too.
    made = [Path(e["SANDBOX_KERNEL_CACHE_DIR"]) / "initramfs" / f"{first.name}-" for e in
            (small_image.env, env)]
    [a], [b] = (list(m.parent.glob(f"{m.name}*.cpio")) for m in made)
    assert a.read_bytes() == b.read_bytes()
