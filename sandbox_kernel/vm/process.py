"""Starting and reaping QEMU: its own session, and it dies with us.

QEMU is started with a plain ``Popen`` (so that it can be started before any event loop
exists, while the kernel process is still importing) and awaited through a pidfd.
"""

import asyncio
import contextlib
import ctypes
import functools
import os
import shutil
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def _child_setup(parent: int) -> None:
    # In the child, between fork and exec.
    ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


@functools.cache
def _setpriv() -> str | None:
    return shutil.which("setpriv")


def _dies_with_parent(cmd: list[str]) -> tuple[list[str], Callable[[], None] | None]:
    """``cmd`` run so that it gets SIGKILL when the thread that started it ends.

    setpriv (util-linux) sets that up and execs QEMU under the same pid. A ``preexec_fn``
    is the fallback only: it runs Python's at-fork hooks, and in a threaded process one of
    them (concurrent.futures') can corrupt a lock when another thread imports meanwhile,
    and the kernel then cannot start its VM."""
    setpriv = _setpriv()
    if setpriv is not None:
        return [setpriv, "--pdeathsig", "KILL", "--", *cmd], None
    parent = os.getpid()
    return cmd, lambda: _child_setup(parent)


class QemuProcess:
    def __init__(self, cmd: list[str], log: Path, pass_fds: tuple[int, ...] = (),
                 nice: int = 0) -> None:
        """A new session keeps Jupyter's SIGINT to the kernel's process group away from QEMU.
        ``nice``: its niceness (coreutils' nice execs it, so that all its threads have it)."""
        if nice and (nice_path := shutil.which("nice")) is not None:
            cmd = [nice_path, "-n", str(nice), *cmd]
        cmd, child_setup = _dies_with_parent(cmd)
        with log.open("wb") as out:
            self.popen = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=child_setup, pass_fds=pass_fds,
            )
        self.pid = self.popen.pid
        # Written whole (rename), so that whoever reads it never sees an empty file.
        part = log.parent / "qemu.pid.part"
        part.write_text(str(self.pid))
        part.replace(log.parent / "qemu.pid")

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    async def wait(self) -> int:
        if (code := self.popen.poll()) is not None:
            return code
        loop = asyncio.get_running_loop()
        exited: asyncio.Future[None] = loop.create_future()
        fd = os.pidfd_open(self.pid)

        def on_exit() -> None:
            if not exited.done():
                exited.set_result(None)

        loop.add_reader(fd, on_exit)
        try:
            await exited
        finally:
            loop.remove_reader(fd)
            os.close(fd)
        return self.popen.wait()

    def signal(self, sig: int) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(sig)

    async def terminate(self, grace_s: float = 2.0) -> int:
        """SIGTERM, then SIGKILL; always reaps."""
        self.signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.wait(), grace_s)
        except TimeoutError:
            self.signal(signal.SIGKILL)
            return await self.wait()
