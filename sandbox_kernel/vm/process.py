"""Starting and reaping QEMU: its own session, and it dies with us."""

import asyncio
import contextlib
import ctypes
import os
import signal
import subprocess
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def _child_setup(parent: int) -> None:
    # In the child, between fork and exec.
    ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


async def spawn(cmd: list[str], log: Path) -> asyncio.subprocess.Process:
    """A new session keeps Jupyter's SIGINT to the kernel's process group away from QEMU."""
    parent = os.getpid()
    with log.open("wb") as out:
        return await asyncio.create_subprocess_exec(
            *cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=lambda: _child_setup(parent),
        )


async def terminate(proc: asyncio.subprocess.Process, grace_s: float = 2.0) -> int:
    """SIGTERM, then SIGKILL; always reaps."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), grace_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
    return await proc.wait()
