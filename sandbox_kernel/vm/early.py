"""A VM started as soon as the kernel process has read its settings: a restore is launched
there and then (``restore.launch_early``), and the rest of the start (the VM manager's import,
the reseed's answer, the shared folder's mount; or a boot) goes on in a thread of its own,
overlapping the rest of the kernel's start-up and the frontend's handshake. The VM is handed
over to the kernel's event loop with ``take``.
"""

import asyncio
import concurrent.futures
import contextlib
import threading
from typing import TYPE_CHECKING, Any

from sandbox_kernel.errors import SandboxError
from sandbox_kernel.vm.config import VMConfig
from sandbox_kernel.vm.restore import HeadStart, launch_early

if TYPE_CHECKING:
    from sandbox_kernel.vm.machine import SandboxVM

_CANCEL_S = 10.0
# After a restore's launch, the VM manager's import (pydantic, the protocol) waits until the
# kernel has answered the frontend's first kernel_info, which the frontend waits for: both are
# Python, and would take turns at the GIL. The restored guest is busy with its reseed and
# warm-up meanwhile. At most this long, for a frontend that asks nothing.
_FRONTEND_FIRST_S = 0.25


class EarlyVM:
    def __init__(self, config: VMConfig, head_start: HeadStart | None = None) -> None:
        self.config = config
        self._head_start = head_start
        self._result: concurrent.futures.Future[SandboxVM] = concurrent.futures.Future()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[Any] | None = None
        self._cancelled = False
        self._frontend_answered = threading.Event()
        self._thread = threading.Thread(target=self._run, name="early-vm", daemon=True)

    @classmethod
    def begin(cls, config: VMConfig | None = None,
              head_start: HeadStart | None = None) -> "EarlyVM":
        """Goes on from ``head_start``, or launches a restore in the calling thread, whose end
        would end QEMU (it must live as long as the kernel: the main thread); then goes on in a
        thread."""
        config = config or VMConfig()
        early = cls(config, head_start or launch_early(config))
        try:
            early._thread.start()
        except BaseException:
            if early._head_start is not None:
                early._head_start.discard()
            raise
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
        head_start, self._head_start = self._head_start, None
        try:
            if self._cancelled:  # cancel() came before the loop existed
                raise asyncio.CancelledError
            if head_start is not None:
                await asyncio.to_thread(self._frontend_answered.wait, _FRONTEND_FIRST_S)
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
    def frontend_answered(self) -> None:
        """The kernel has answered the frontend's first kernel_info (from any thread)."""
        self._frontend_answered.set()

    def cancel(self) -> None:
        self._cancelled = True
        self._frontend_answered.set()
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
