"""Suite-wide: after the tests, no QEMU they started may be left running, and no run directory
behind. Whatever was there before the session (a notebook someone has open) is not counted."""

import time

import pytest

from sandbox_kernel.vm.rundir import sweep_stale_run_dirs
from tests.leftovers import qemu_processes, run_dirs

_before: dict[str, set[str]] = {}


def pytest_sessionstart(session: pytest.Session) -> None:
    _before["qemu"], _before["dirs"] = qemu_processes(), run_dirs()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    deadline = time.monotonic() + 10  # kernels shut down asynchronously
    while (qemu := qemu_processes() - _before["qemu"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    # Tests that SIGKILL a kernel leave its run directory for the next start to sweep.
    sweep_stale_run_dirs()
    left = sorted(run_dirs() - _before["dirs"])
    if qemu or left:
        print(f"\nLEFT BEHIND by the tests: QEMU processes: {sorted(qemu) or 'none'}; "
              f"run directories: {left or 'none'}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
