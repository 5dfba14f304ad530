"""Suite-wide: after the tests, no QEMU may be left running and no run directory behind."""

import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from sandbox_kernel.vm.qemu import RUN_DIR_PREFIX, sweep_stale_run_dirs


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    deadline = time.monotonic() + 10  # kernels shut down asynchronously
    while time.monotonic() < deadline:
        qemu = subprocess.run(["pgrep", "-a", "qemu-system"], capture_output=True,
                              text=True, check=False).stdout.strip()
        if not qemu:
            break
        time.sleep(0.2)
    # Tests that SIGKILL a kernel leave its run directory for the next start to sweep.
    sweep_stale_run_dirs()
    left = sorted(p.name for p in Path(tempfile.gettempdir()).glob(f"{RUN_DIR_PREFIX}*"))
    if qemu or left:
        print(f"\nLEFT BEHIND after the tests: QEMU processes: {qemu or 'none'}; "
              f"run directories: {left or 'none'}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
