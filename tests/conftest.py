"""Suite-wide. The suite runs in folders of its own: its cache (snapshots, the accelerator
verdict, initramfs files, the images tests build), state (logs) and VM run folders are made
for this session and removed after it; only the built guest images are shared with the
user, read-only, and downloaded packages (each file named by what it holds). So the suite
never touches the user's snapshots or images, and two suites can run at once.

After the tests, no QEMU that they started may be left running, nor a run folder behind."""

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from sandbox_kernel import paths


def _own_folders() -> Path:
    images = paths.images_dir()  # the user's (or the one named already), read before moving
    # Downloaded packages are named by what they hold, so sessions share them with the user.
    downloads = paths.downloads_dir()
    root = Path(tempfile.mkdtemp(prefix="sandbox-kernel-tests-"))
    os.environ.update({
        "SANDBOX_KERNEL_IMAGES_DIR": str(images),
        "SANDBOX_KERNEL_DOWNLOADS_DIR": str(downloads),
        "SANDBOX_KERNEL_CACHE_DIR": str(root / "cache"),
        "SANDBOX_KERNEL_STATE_DIR": str(root / "state"),
        "SANDBOX_KERNEL_RUN_DIR": str(root / "run"),
        # A spare snapshot is a boot's worth of CPU beside each start, which would slow every
        # test that starts a kernel; tests of spares turn them on.
        "SANDBOX_KERNEL_SPARE_SNAPSHOTS": "0",
    })
    return root


# At import, before any test (or kernel the tests start, which inherits the environment).
SUITE_ROOT = _own_folders()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    from sandbox_kernel.vm.rundir import sweep_stale_run_dirs
    from tests.leftovers import qemu_processes, run_dirs

    deadline = time.monotonic() + 10  # kernels shut down asynchronously
    while (qemu := qemu_processes()) and time.monotonic() < deadline:
        time.sleep(0.2)
    # Tests that SIGKILL a kernel leave its run folder for the next start to sweep.
    sweep_stale_run_dirs()
    left = sorted(run_dirs())
    if qemu or left:
        print(f"\nLEFT BEHIND by the tests: QEMU processes: {sorted(qemu) or 'none'}; "
              f"run folders: {left or 'none'}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    shutil.rmtree(SUITE_ROOT / "cache", ignore_errors=True)  # snapshots: ~300 MB each
    if session.exitstatus == pytest.ExitCode.OK and not qemu:
        shutil.rmtree(SUITE_ROOT, ignore_errors=True)
    else:
        print(f"\nThe suite's logs are kept in {paths.logs_dir()}")
