"""``SandboxVM``: one disposable QEMU microvm with the guest agent answering on its channel."""

import asyncio
import contextlib
import logging
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from types import TracebackType
from typing import Literal, TypeVar

from sandbox_kernel import paths
from sandbox_kernel import protocol as p
from sandbox_kernel.channel import ChannelClosed, DualPortChannel
from sandbox_kernel.errors import SandboxError, VMDied, VMStartError
from sandbox_kernel.image.store import ImagePaths, require_image
from sandbox_kernel.vm import process
from sandbox_kernel.vm.config import VMConfig
from sandbox_kernel.vm.qemu import RunDir, command_line

log = logging.getLogger(__name__)
T = TypeVar("T")

_KVM_FAILURE = "KVM internal error"
_CONSOLE_TAIL = 6000


def _tail(path: Path, size: int = _CONSOLE_TAIL) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    return data[-size:].decode("utf-8", "replace")


class SandboxVM:
    """``async with SandboxVM(config) as vm:`` boots a VM and stops it, leaving nothing behind."""

    def __init__(self, config: VMConfig | None = None, accel: str | None = None) -> None:
        self.config = config or VMConfig()
        self.accel = accel  # None: chosen at start
        self.image: ImagePaths | None = None
        self.proc: asyncio.subprocess.Process | None = None
        self.channel: DualPortChannel | None = None
        self.run: RunDir | None = None
        self.boot_seconds: float | None = None
        self.started_from: Literal["cold", "snapshot"] = "cold"

    async def __aenter__(self) -> "SandboxVM":
        await self.start()
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    # --- start ------------------------------------------------------------------------------
    async def start(self) -> None:
        started = time.monotonic()
        self.image = await asyncio.to_thread(require_image, self.config.image)
        if self.accel is None:
            from sandbox_kernel.vm.accel import choose_accelerator

            self.accel = (await choose_accelerator(self.config, self.image)).accel
        failure: VMStartError | None = None
        for attempt in range(1, self.config.boot_attempts + 1):
            try:
                await self._boot(self.image, self.accel)
            except VMStartError as exc:
                failure = exc
                log.warning("boot attempt %d failed: %s", attempt, exc.reason)
                await self._teardown()
                if "KVM" in exc.reason:
                    break  # retrying a broken accelerator does not help
            else:
                self.boot_seconds = time.monotonic() - started
                return
        assert failure is not None
        raise failure

    async def _boot(self, image: ImagePaths, accel: str, incoming: str | None = None) -> None:
        run = self.run = RunDir(Path(tempfile.mkdtemp(prefix="sandbox-vm-")))
        cmd = command_line(self.config, image, accel, run, incoming)
        self.proc = await process.spawn(cmd, run.qemu_log)
        self.channel = DualPortChannel(run.cmd_socket, run.evt_socket, peer=self.proc.pid)
        deadline = asyncio.get_running_loop().time() + self.config.boot_timeout_s
        await self._guarded(self._connect(self.channel), deadline)
        if incoming is None:
            await self._guarded(self._wait_for_agent(self.channel), deadline)

    async def _guarded(self, work: Awaitable[T], deadline: float) -> T:
        """``work``, unless QEMU exits or the boot deadline passes first."""
        assert self.proc is not None
        task = asyncio.ensure_future(work)
        died = asyncio.ensure_future(self.proc.wait())
        remaining = max(0.0, deadline - asyncio.get_running_loop().time())
        try:
            done, _ = await asyncio.wait({task, died}, timeout=remaining,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (task, died):
                if not t.done():
                    t.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await t
        if task in done:
            try:
                return task.result()
            except ChannelClosed as exc:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.proc.wait(), 1.0)
                raise self._start_error(f"the guest channel closed ({exc})") from None
        if died in done:
            raise self._start_error(f"QEMU exited with code {self.proc.returncode}")
        raise self._start_error(
            f"the guest agent did not answer within {self.config.boot_timeout_s:.0f} s")

    def _start_error(self, reason: str) -> VMStartError:
        assert self.run is not None
        qemu_out = _tail(self.run.qemu_log, 2000).strip()
        if _KVM_FAILURE in qemu_out:
            reason = f"KVM is broken on this host ({_KVM_FAILURE})"
        elif qemu_out:
            reason += f"; QEMU said: {qemu_out.splitlines()[-1]}"
        kept = self._keep_console_log()
        return VMStartError(reason, _tail(self.run.console_log), str(kept) if kept else None)

    def _keep_console_log(self) -> Path | None:
        assert self.run is not None
        if not self.run.console_log.exists():
            return None
        dest_dir = paths.logs_dir()
        dest_dir.mkdir(parents=True, exist_ok=True)
        dest = dest_dir / f"boot-failure-{time.strftime('%Y%m%d-%H%M%S')}-{self.run.path.name}.log"
        shutil.copy(self.run.console_log, dest)
        with dest.open("a") as fh:
            fh.write("\n--- QEMU output ---\n" + _tail(self.run.qemu_log))
        return dest

    async def _connect(self, channel: DualPortChannel) -> None:
        # QEMU creates its sockets shortly after it starts; never connect to a stale path.
        while True:
            try:
                await channel.connect()
                return
            except (FileNotFoundError, ConnectionRefusedError):
                await asyncio.sleep(0.005)

    async def _wait_for_agent(self, channel: DualPortChannel) -> p.Pong:
        # A line sent before the guest opened its port may be lost, so ping with backoff.
        delay = 0.05
        while True:
            if self.run is not None and _KVM_FAILURE in _tail(self.run.qemu_log, 2000):
                raise self._start_error("KVM failed")
            try:
                reply = await asyncio.wait_for(channel.request(p.Ping(id=channel.next_id())),
                                               delay)
            except TimeoutError:
                delay = min(delay * 2, 1.0)
                continue
            if isinstance(reply, p.Pong):
                return reply

    # --- use --------------------------------------------------------------------------------
    def _require_channel(self) -> DualPortChannel:
        if self.channel is None:
            raise SandboxError("the VM is not running")
        if self.channel.closed is not None:
            raise VMDied(str(self.channel.closed))
        return self.channel

    async def execute(self, code: str, **options: object) -> AsyncIterator[p.Event]:
        channel = self._require_channel()
        request = p.Execute(id=channel.next_id(), code=code, **options)  # type: ignore[arg-type]
        async for event in channel.stream(request):
            yield event

    async def request(self, request_type: type[p.Message], **fields: object) -> p.Event:
        channel = self._require_channel()
        return await channel.request(request_type(id=channel.next_id(), **fields))

    def interrupt(self) -> None:
        channel = self._require_channel()
        channel.send(p.Interrupt(id=channel.next_id()))

    # --- stop -------------------------------------------------------------------------------
    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None and self.channel is not None:
            with contextlib.suppress(SandboxError, TimeoutError):
                await asyncio.wait_for(self.request(p.Shutdown), 1.0)
                await asyncio.wait_for(self.proc.wait(), 2.0)
        await self._teardown()

    async def _teardown(self) -> None:
        if self.proc is not None:
            await process.terminate(self.proc)
        if self.channel is not None:
            await self.channel.close()
            self.channel = None
        if self.run is not None:
            shutil.rmtree(self.run.path, ignore_errors=True)
            self.run = None
