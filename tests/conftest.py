"""Suite-wide: after the tests, no QEMU they started may be left running, and no run directory
behind. Whatever was there before the session (a notebook someone has open) is not counted."""

import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from sandbox_kernel.vm.qemu import RUN_DIR_PREFIX, sweep_stale_run_dirs

_before: dict[str, set[str]] = {}


def _qemu() -> set[str]:
    out = subprocess.run(["pgrep", "-a", "qemu-system"], capture_output=True, text=True,
                         check=False).stdout
    return {line for line in out.splitlines() if line.strip()}


def _run_dirs() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob(f"{RUN_DIR_PREFIX}*")}


def pytest_sessionstart(session: pytest.Session) -> None:
    _before["qemu"], _before["dirs"] = _qemu(), _run_dirs()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    deadline = time.monotonic() + 10  # kernels shut down asynchronously
    while (qemu := _qemu() - _before["qemu"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    # Tests that SIGKILL a kernel leave its run directory for the next start to sweep.
    sweep_stale_run_dirs()
    left = sorted(_run_dirs() - _before["dirs"])
    if qemu or left:
        print(f"\nLEFT BEHIND by the tests: QEMU processes: {sorted(qemu) or 'none'}; "
              f"run directories: {left or 'none'}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
