"""A VM started in a thread of its own as soon as the kernel process has bound its sockets.

The whole start (restore or boot, QMP, the agent's handshake, the reseed and the guest's
warm-up) then overlaps the rest of the kernel's start-up and the frontend's handshake. The
VM is handed over to the kernel's event loop with ``take``.
"""

import asyncio
import concurrent.futures
import contextlib
import threading
from typing import TYPE_CHECKING, Any

from sandbox_kernel.errors import SandboxError
from sandbox_kernel.vm.config import VMConfig
from sandbox_kernel.vm.restore import launch_early, resume_early

if TYPE_CHECKING:
    from sandbox_kernel.vm.machine import SandboxVM

_CANCEL_S = 10.0


class EarlyVM:
    def __init__(self, config: VMConfig) -> None:
        self.config = config
        self._result: concurrent.futures.Future[SandboxVM] = concurrent.futures.Future()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[Any] | None = None
        self._cancelled = False
        self._thread = threading.Thread(target=self._run, name="early-vm", daemon=True)

    @classmethod
    def begin(cls, config: VMConfig | None = None) -> "EarlyVM":
        early = cls(config or VMConfig())
        early._thread.start()
        return early

    # --- in the thread ----------------------------------------------------------------------
    def _run(self) -> None:
        # The VM is handed over only once this thread's event loop has shut down entirely.
        try:
            vm = asyncio.run(self._start())
        except asyncio.CancelledError:
            self._result.set_exception(SandboxError("the early VM start was cancelled"))
            return
        except Exception as exc:  # handed to whoever takes the VM
            self._result.set_exception(exc)
            return
        self._result.set_result(vm)
        # QEMU dies with the *thread* that started it (PR_SET_PDEATHSIG), so this thread
        # stays for as long as the process.
        threading.Event().wait()

    async def _start(self) -> "SandboxVM":
        self._task = asyncio.current_task()
        self._loop = asyncio.get_running_loop()
        if self._cancelled:  # cancel() came before the loop existed
            raise asyncio.CancelledError
        # The guest resumes, then gets going while the VM manager imports (pydantic and the
        # protocol models): it waits for the reseed, which comes after.
        head_start = launch_early(self.config)
        if head_start is not None:
            head_start = await resume_early(head_start, self.config.restore_timeout_s)
        try:
            from sandbox_kernel.vm.launch import start_vm
        except BaseException:
            if head_start is not None:
                head_start.discard()
            raise
        vm = await start_vm(self.config, head_start)
        try:
            await vm.detach()
        except BaseException:
            await vm.stop()
            raise
        return vm

    # --- from the kernel --------------------------------------------------------------------
    def cancel(self) -> None:
        self._cancelled = True
        loop, task = self._loop, self._task
        if loop is not None and task is not None:
            with contextlib.suppress(RuntimeError):  # the loop has just finished
                loop.call_soon_threadsafe(task.cancel)

    async def take(self, config: VMConfig) -> "SandboxVM | None":
        """The started VM, now on this event loop; None if it was started with other
        settings than ``config`` (and is stopped). Raises what the start raised."""
        try:
            vm = await self._outcome()
        except asyncio.CancelledError:
            await self.discard()
            raise
        except Exception:
            if config != self.config:
                return None
            raise
        try:
            await vm.attach()
        except BaseException:  # cancelled meanwhile: nobody else would stop it
            await vm.stop()
            raise
        if config != self.config:
            await vm.stop()
            return None
        return vm

    def _outcome(self) -> "asyncio.Future[SandboxVM]":
        # Shielded: cancelling a wrapped future would cancel the thread's future too, and
        # then nobody could wait for the thread to finish cleaning up.
        inner = asyncio.wrap_future(self._result)
        inner.add_done_callback(lambda f: f.cancelled() or f.exception())  # seen, not lost
        return asyncio.shield(inner)

    async def discard(self) -> None:
        """Stops the start, or the VM it started, and waits until nothing is left."""
        self.cancel()
        try:
            vm = await asyncio.wait_for(self._outcome(), _CANCEL_S)
        except Exception:  # it failed, or was cancelled, and cleaned up after itself
            return
        await vm.attach()
        await vm.stop()
