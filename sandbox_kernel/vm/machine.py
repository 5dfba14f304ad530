"""``SandboxVM``: one disposable QEMU microvm with the guest agent answering on its channel."""

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal, TypeVar

from qemu.qmp import QMPClient, QMPError

from sandbox_kernel import paths
from sandbox_kernel import protocol as p
from sandbox_kernel.channel import ChannelClosed, DualPortChannel, final_event, peer_pid
from sandbox_kernel.errors import SandboxError, VMDied, VMStartError
from sandbox_kernel.image.store import ImagePaths, require_image
from sandbox_kernel.share.plan import SharePlan, make_writable_folders
from sandbox_kernel.share.server import FuseServer
from sandbox_kernel.share.settings import ShareSettings
from sandbox_kernel.share.transport import ShareTransport
from sandbox_kernel.share.wheelhouse import WheelhousePlan
from sandbox_kernel.vm import migration, snapshot_store
from sandbox_kernel.vm.config import VMConfig
from sandbox_kernel.vm.port_pairs import FIRST_RESEED_ID, LOADER, PortPairs
from sandbox_kernel.vm.process import QemuProcess
from sandbox_kernel.vm.qemu import command_line
from sandbox_kernel.vm.restore import HeadStart, launch_restore
from sandbox_kernel.vm.rundir import RunDir
from sandbox_kernel.vm.snapshot_store import CaptureRam, SnapshotPaths
from sandbox_kernel.vm.timezone import host_timezone

log = logging.getLogger(__name__)
T = TypeVar("T")

_KVM_FAILURE = "KVM internal error"
# The guest's answers when it could not mount one part of a MountShare: which part.
_UNAVAILABLE: dict[str, Literal["share", "wheelhouse"]] = {
    p.FOLDER_UNAVAILABLE: "share", p.WHEELHOUSE_UNAVAILABLE: "wheelhouse"}
# Warming imports the image's preload list, which under TCG on a busy host can take minutes.
_CAPTURE_TIMEOUT_S = 600.0
# A spare is made beside the user's VM, and on a small host must leave it the CPU: niced,
# and begun once the kernel's first cells have run.
_SPARE_NICENESS = 10
_SPARE_DELAY_S = 3.0
_CONSOLE_TAIL = 6000
_STATUS_TIMEOUT_S = 2.0
_KEPT_BOOT_LOGS = 50


def prune_boot_logs(folder: Path, keep: int = _KEPT_BOOT_LOGS) -> None:
    """Keeps the newest ``keep`` boot-failure logs (their names sort by time)."""
    for old in sorted(folder.glob("boot-failure-*.log"))[:-keep]:
        old.unlink(missing_ok=True)


def _tail(path: Path, size: int = _CONSOLE_TAIL) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    return data[-size:].decode("utf-8", "replace")


class SandboxVM:
    """One VM under ``accel`` ("kvm" or "tcg"; ``launch.start_vm`` chooses it). ``start``
    restores its snapshot or boots it; ``stop`` leaves nothing behind."""

    def __init__(self, config: VMConfig, accel: str) -> None:
        self.config = config
        self.accel = accel
        self.image: ImagePaths | None = None
        self.proc: QemuProcess | None = None
        self.channel: DualPortChannel | None = None
        self.run: RunDir | None = None
        self.boot_seconds: float | None = None
        self.started_from: Literal["cold", "snapshot"] = "cold"
        # Booted, or restored from a spare: no other VM has its Python's hash seed and
        # address layout (see snapshot_store).
        self.own_layout = False
        self._spare_task: asyncio.Task[bool] | None = None
        self._qmp: QMPClient | None = None
        self._stage = "booting"
        self._timeout = self.config.boot_timeout_s
        # A restore's ports, connected before QEMU started; the rest listen in the run folder.
        self._ports: PortPairs | None = None
        self._first_reseed: AsyncIterator[p.Event] | None = None
        self._capture_ram: CaptureRam | None = None  # a boot that takes a snapshot
        self._handover: tuple[socket.socket, socket.socket, int] | None = None
        self._share: ShareTransport | None = None
        self._wheelhouse: ShareTransport | None = None
        self.shared_folder: str | None = None  # the guest's path of the host folder it sees
        self.share_failure = ""  # why a folder asked for is not shared
        self.wheelhouse_failure = ""  # why a wheelhouse asked for is not
        # Told when the shared folder's limits refuse the guest something (a thread calls it).
        self.on_share_notice: Callable[[str], None] = lambda message: log.warning(
            "shared folder: %s", message)

    # --- start ------------------------------------------------------------------------------
    async def start(self, head_start: HeadStart | None = None) -> None:
        """Restores the snapshot, or boots (and takes the snapshot). ``head_start``: a
        restore of this VM's snapshot that the caller has launched already."""
        started = time.monotonic()
        if head_start is not None:
            self.image = head_start.image
            if await self._restore(head_start.snap, head_start):
                self.boot_seconds = time.monotonic() - started
                return
        self.image = await asyncio.to_thread(require_image, self.config.image)
        capture = False
        if self.config.snapshots:
            snap = snapshot_store.snapshot_for(self.config, self.image, self.accel)
            spare = snapshot_store.claim(snapshot_store.spare_of(snap)) if (
                self.config.spare_snapshots) else None
            for candidate in (spare, snap):
                if candidate is not None and candidate.exists() and await self._restore(
                        candidate):
                    self.boot_seconds = time.monotonic() - started
                    return
            capture = not snap.exists()
        await self._cold_boot(self.image, self.accel, capture)
        await self._capture_if_missing()
        if self.started_from == "cold":  # a restore has reseeded already
            self.own_layout = True
            await self.reseed()  # for the host's time zone
        self.boot_seconds = time.monotonic() - started

    async def _restore(self, snap: SnapshotPaths, head_start: HeadStart | None = None) -> bool:
        """``_try_restore``; a claimed spare is deleted after, whatever came of it (QEMU holds
        its files by then)."""
        self.own_layout = snap.claimed
        try:
            return await self._try_restore(snap, head_start)
        finally:
            if snap.claimed:
                snap.discard()

    async def _capture_if_missing(self) -> None:
        """After a boot on a capture RAM file: takes the snapshot, then goes on from it."""
        ram, self._capture_ram = self._capture_ram, None
        if ram is None:
            return
        assert self.image is not None
        try:
            snap = snapshot_store.snapshot_for(self.config, self.image, self.accel)
            try:
                taken = await self._take_snapshot(snap, ram)
            except TimeoutError:
                # A guest still warming is in no state to run cells; a later start tries again.
                log.warning("warming the VM for its snapshot took over %.0f s; booting again "
                            "without taking one", _CAPTURE_TIMEOUT_S)
                await self._teardown()
                await self._cold_boot(self.image, self.accel, capture=False)
                return
            if not taken:
                return  # not taken: this VM runs on
            # The VM that took the snapshot is gone; its RAM is the snapshot's now.
            if not await self._try_restore(snap):
                await self._cold_boot(self.image, self.accel, capture=False)
        finally:
            ram.discard()

    async def _cold_boot(self, image: ImagePaths, accel: str, capture: bool,
                         nice: int = 0) -> None:
        """``capture``: boot on a RAM file that a snapshot can be taken from. ``nice``: QEMU's
        niceness, for one that must not take the CPU from the user's VM."""
        failure: VMStartError | None = None
        for attempt in range(1, self.config.boot_attempts + 1):
            self._stage = "booting"
            self._capture_ram = CaptureRam.create() if capture else None
            ram = self._capture_ram.backing() if self._capture_ram else None
            try:
                self._launch(command_line(self.config, image, accel, self._new_run_dir(),
                                          ram=ram), nice)
                await self._until_ready(self._wait_for_agent)
            except VMStartError as exc:
                failure = exc
                log.warning("boot attempt %d failed: %s", attempt, exc.reason)
                await self._teardown()
                if "KVM" in exc.reason:
                    break  # retrying a broken accelerator does not help
            else:
                self.started_from = "cold"
                return
        assert failure is not None
        raise failure

    async def _take_snapshot(self, snap: SnapshotPaths, ram: CaptureRam) -> bool:
        """Warms this VM, booted on ``ram``, and saves it as ``snap``. On success the VM is
        gone (its RAM is the snapshot's now, and must not change); otherwise it runs on."""
        with snapshot_store.capture_lock(snap) as mine:
            if not mine or snap.exists():
                return False  # another kernel is taking it, or has just taken it
            return await self._save_snapshot(snap, ram)

    async def _save_snapshot(self, snap: SnapshotPaths, ram: CaptureRam,
                             otherwise: str = "later starts will boot cold") -> bool:
        """``_take_snapshot``, under its lock."""
        started = time.monotonic()
        await asyncio.wait_for(self.request(p.Warm, **self._preload()), _CAPTURE_TIMEOUT_S)
        await asyncio.wait_for(self.request(p.PrepareSnapshot), _CAPTURE_TIMEOUT_S)
        status = await migration.save_state(await self.qmp(), ram.state)
        if status != "completed":
            with contextlib.suppress(QMPError):  # it runs on after a failed migration
                await (await self.qmp()).execute("cont")
            await self.reseed()
            log.warning("taking a snapshot failed (%s); %s", status, otherwise)
            return False
        await self.stop()
        # To its end even if cancelled: a caller's discard() must not race the rename.
        commit = asyncio.ensure_future(asyncio.to_thread(ram.commit, snap))
        try:
            await asyncio.shield(commit)
        except asyncio.CancelledError:
            await asyncio.wait({commit})
            raise
        log.info("snapshot taken in %.1f s: %s (%.0f MB on disk)", time.monotonic() - started,
                 snap.folder, snap.disk_bytes() / 2**20)
        snapshot_store.prune_snapshots(keep=snap)
        return True

    # --- spares -----------------------------------------------------------------------------
    def begin_spare(self) -> None:
        """Makes the spare snapshot for this VM's settings in the background, if none is ready
        or being made; ``stop`` ends it. On this VM's event loop."""
        if (self._spare_task is None and self.config.snapshots and self.config.spare_snapshots
                and self.image is not None):
            self._spare_task = asyncio.get_running_loop().create_task(
                SandboxVM(self.config, self.accel).make_spare(self.image, _SPARE_DELAY_S),
                name="spare")

    async def spare_made(self) -> bool:
        """Waits for the spare ``begin_spare`` makes; False if it made none."""
        return await asyncio.shield(self._spare_task) if self._spare_task is not None else False

    async def make_spare(self, image: ImagePaths, delay_s: float = 0.0) -> bool:
        """Boots this VM, not yet started, and saves it as the spare of its settings' snapshot;
        then it is gone. False if a spare is ready, another process is making it, or this
        failed (logged: the next restore shares the snapshot instead)."""
        await asyncio.sleep(delay_s)
        self.image = image
        spare = snapshot_store.spare_of(snapshot_store.snapshot_for(self.config, image,
                                                                    self.accel))
        with snapshot_store.capture_lock(spare) as mine:
            if not mine or spare.exists():
                return False
            try:
                await self._cold_boot(image, self.accel, capture=True, nice=_SPARE_NICENESS)
                ram, self._capture_ram = self._capture_ram, None
                assert ram is not None
                try:
                    return await self._save_snapshot(
                        spare, ram, "the next start restores the shared snapshot")
                finally:
                    ram.discard()
            except Exception as exc:  # a timeout, QMP, the disk: the kernel goes on without
                log.warning("the spare snapshot could not be made: %r", exc)
                return False
            finally:
                await self.stop()  # and a failed boot's RAM file

    def _preload(self) -> dict[str, object]:
        """The modules the image's recipe preloads; an image that names none gets the
        protocol's default list."""
        assert self.image is not None
        modules = self.image.preload()
        return {} if modules is None else {"modules": modules}

    async def _try_restore(self, snap: SnapshotPaths, head_start: HeadStart | None = None
                           ) -> bool:
        # A restore normally takes well under a second, so it gets a short deadline and one
        # retry; a snapshot QEMU cannot load is deleted, and the caller boots cold.
        for attempt in (1, 2):
            try:
                assert self.image is not None
                if head_start is not None and attempt == 1:
                    self.run = head_start.run
                    self._adopt(head_start.proc, head_start.ports)
                else:
                    try:
                        proc, ports = launch_restore(
                            self.config, self.image, self.accel, self._new_run_dir(), snap)
                    except OSError as exc:  # incomplete, or just pruned by another kernel
                        log.warning("cannot open the snapshot: %s", exc)
                        await self._teardown()
                        snap.discard()
                        break
                    self._adopt(proc, ports)
                await self._until_ready(self._resumed, self.config.restore_timeout_s)
            except SandboxError as exc:
                # QEMU exits when it cannot load the snapshot, and so does a guest that
                # crashes on resuming (code 0): then the snapshot itself is bad. So is one
                # that QEMU has loaded but does not run.
                unloadable = ((self.proc is not None and self.proc.returncode is not None)
                              or await self._loaded_stopped())
                log.warning("snapshot restore failed (attempt %d, while %s): %s", attempt,
                            self._stage, str(exc).splitlines()[0])
                await self._teardown()
                if unloadable:
                    snap.discard()
                    break
                continue
            self.started_from = "snapshot"
            return True
        log.warning("booting cold instead of restoring the snapshot")
        return False

    async def _loaded_stopped(self) -> bool:
        """Whether QEMU has loaded a snapshot's state and left the guest stopped, as it does
        with a state saved from a stopped guest (a snapshot of another format, or a broken
        one): nothing would ever run it."""
        try:
            async with asyncio.timeout(_STATUS_TIMEOUT_S):
                reply = await (await self.qmp()).execute("query-status")
        except (QMPError, OSError, TimeoutError, EOFError):
            return False
        status = reply.get("status") if isinstance(reply, dict) else None
        if status in ("paused", "postmigrate", "prelaunch"):
            log.warning("QEMU loaded the snapshot but left the guest %s", status)
            return True
        return False

    def _new_run_dir(self) -> RunDir:
        self.run = RunDir.create()
        return self.run

    def _launch(self, cmd: list[str], nice: int = 0) -> None:
        assert self.run is not None
        self._adopt(QemuProcess(cmd, self.run.qemu_log, nice=nice))

    def _adopt(self, proc: QemuProcess, ports: PortPairs | None = None) -> None:
        """Takes ``proc``, started for ``self.run``, with a channel to its ports: ``ports``,
        connected already (a restore, its first reseed written), or sockets in the run folder."""
        assert self.run is not None
        self.proc, self._ports = proc, ports
        self.channel = self._new_channel(first_id=FIRST_RESEED_ID + 1 if ports is not None else 1)
        if ports is not None:
            self._first_reseed = self.channel.expect(FIRST_RESEED_ID, "reseed")

    def _new_channel(self, first_id: int) -> DualPortChannel:
        assert self.run is not None and self.proc is not None
        # A socket in the run folder must be QEMU's; a socket pair's other end can only be.
        return DualPortChannel(self.run.cmd_socket, self.run.evt_socket,
                               peer=None if self._ports is not None else self.proc.pid,
                               first_id=first_id)

    async def _until_ready(self, then: Any, limit_s: float | None = None) -> None:
        assert self.channel is not None
        self._timeout = limit_s or self.config.boot_timeout_s
        deadline = asyncio.get_running_loop().time() + self._timeout
        if self._ports is not None:
            sockets = (self._ports.take("cmd"), self._ports.take("evt"))
            await self._guarded(self.channel.connect(sockets=sockets), deadline)
        else:
            await self._guarded(self._connect(self.channel), deadline)
        await self._guarded(then(self.channel), deadline)

    async def _resumed(self, channel: DualPortChannel) -> None:
        """Until the restored guest has answered the reseed that was waiting in its port. (No
        ping first: its agent's protocol was checked by the boot that took the snapshot, whose
        key names the agent's code.)"""
        self._stage = "resuming the snapshot"
        assert self._first_reseed is not None
        reply = await final_event(self._first_reseed)
        if not isinstance(reply, p.Ack):
            raise SandboxError(f"the guest could not reseed: {reply}")
        # The guest runs, so the monitor has carried out the load: it has nothing more to do.
        assert self._ports is not None
        self._ports.take(LOADER).close()
        reply = await channel.request(p.SetClock(id=channel.next_id(), wall_time=time.time()))
        if not isinstance(reply, p.Ack):
            raise SandboxError(f"the guest could not set its clock: {reply}")

    async def reseed(self, retry_after: float | None = None) -> None:
        """A restored guest has the saved RNG state and clock: give it fresh ones, and the
        host's time zone. Reseeding twice does no harm, so a request that goes unanswered
        can be sent again."""
        channel = self._require_channel()
        timezone = host_timezone()
        reply = await self._ask_until_answered(
            channel, lambda: p.Reseed(id=channel.next_id(), entropy=os.urandom(64),
                                      wall_time=time.time(), timezone=timezone,
                                      fresh_python=self.config.fresh_python
                                      and not self.own_layout), retry_after)
        if not isinstance(reply, p.Ack):
            raise SandboxError(f"the guest could not reseed: {reply}")

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
            except (ChannelClosed, QMPError, ConnectionError, EOFError) as exc:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.proc.wait(), 1.0)
                raise self._start_error(f"lost QEMU while {self._stage} ({exc})") from None
        if died in done:
            raise self._start_error(f"QEMU exited with code {self.proc.returncode}")
        raise self._start_error(f"the guest agent did not answer within {self._timeout:.0f} s")

    def _start_error(self, reason: str) -> VMStartError:
        assert self.run is not None
        qemu_out = _tail(self.run.qemu_log, 2000).strip()
        if _KVM_FAILURE in qemu_out or "failed to set MSR" in qemu_out:
            reason = f"KVM does not work on this host ({qemu_out.splitlines()[0]})"
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
        prune_boot_logs(dest_dir)
        return dest

    async def _connect(self, channel: DualPortChannel) -> None:
        # QEMU creates its sockets shortly after it starts; never connect to a stale path.
        while True:
            try:
                await channel.connect()
                return
            except (FileNotFoundError, ConnectionRefusedError):
                await asyncio.sleep(0.002)

    async def _wait_for_agent(self, channel: DualPortChannel) -> p.Pong:
        # A line sent before the guest opened its port may be lost, so ping with backoff.
        while True:
            reply = await self._ask_until_answered(
                channel, lambda: p.Ping(id=channel.next_id()), retry_after=0.02)
            if isinstance(reply, p.Pong):
                if reply.protocol != p.PROTOCOL_VERSION:
                    raise VMStartError(
                        f"the guest agent speaks protocol {reply.protocol}, this kernel "
                        f"{p.PROTOCOL_VERSION}: the image holds another version's agent. Run "
                        "`sandbox-kernel image build --force`.")
                return reply

    async def _ask_until_answered(self, channel: DualPortChannel,
                                  make_request: Callable[[], p.Message],
                                  retry_after: float | None) -> p.Event:
        """A fresh request each time the last went unanswered for ``retry_after`` seconds
        (doubling up to 1 s); None waits for one answer."""
        delay = retry_after
        while True:
            if self.run is not None and _KVM_FAILURE in _tail(self.run.qemu_log, 2000):
                raise self._start_error("KVM failed")
            try:
                return await asyncio.wait_for(channel.request(make_request()), delay)
            except TimeoutError:
                assert delay is not None
                delay = min(delay * 2, 1.0)

    async def qmp(self) -> QMPClient:
        if self._qmp is None:
            assert self.run is not None
            client = QMPClient("sandbox-vm")
            proc = self.proc
            await migration.connect(client, self.run.qmp_socket,
                                    lambda: proc is not None and proc.returncode is not None)
            self._qmp = client
        return self._qmp

    # --- the host's folder -------------------------------------------------------------------
    async def share_folder(self, plan: SharePlan,
                           wheelhouse: WheelhousePlan | None = None) -> None:
        """Serves the plan's folder on the share port, and has the guest mount it as the cells'
        working folder; or tells the guest why nothing is shared (for ``%sandbox``). The
        wheelhouse, if any, is served on its own port and mounted read-only. Each does without
        the other: one that cannot be served or mounted is left out, and ``share_failure`` or
        ``wheelhouse_failure`` says why."""
        try:
            if plan.settings is not None:
                settings = replace(plan.settings, overlaid=True)
                try:
                    await asyncio.to_thread(make_writable_folders, settings)
                    self._share = await self._serve("share", settings)
                except (SandboxError, OSError) as exc:
                    await self._left_out("share", f"it could not be served ({exc})")
            if wheelhouse is not None and wheelhouse.settings is not None:
                try:
                    self._wheelhouse = await self._serve("wheelhouse", wheelhouse.settings)
                except (SandboxError, OSError) as exc:
                    await self._left_out("wheelhouse", f"it could not be served ({exc})")
            while not await self._mount(plan, wheelhouse):
                pass
        except BaseException:
            await self._stop_serving()
            raise
        self.shared_folder = plan.guest_path if self._share is not None else None

    async def _mount(self, plan: SharePlan, wheelhouse: WheelhousePlan | None) -> bool:
        """Asks the guest to mount what is served. False when it could not mount one part,
        now left out: ask again."""
        if self._share is None and plan.settings is not None:
            plan = SharePlan(None, self.share_failure)
        if wheelhouse is not None and self._wheelhouse is None and self.wheelhouse_failure:
            wheelhouse = WheelhousePlan(None, self.wheelhouse_failure)
        described = [plan.describe(), *([wheelhouse.describe()] if wheelhouse else [])]
        fields: dict[str, object] = {"description": "\n".join(described)}
        if self._share is not None and plan.settings is not None:
            fields.update(name=plan.guest_name, writable=list(plan.settings.writable))
        if self._wheelhouse is not None:
            fields.update(wheelhouse=True)
        # Under the boot's deadline: a guest stuck in a mount must not hang the kernel's start.
        deadline = asyncio.get_running_loop().time() + self._timeout
        reply = await self._guarded(self.request(p.MountShare, **fields), deadline)
        if isinstance(reply, p.AgentError) and reply.error_type in _UNAVAILABLE:
            await self._left_out(_UNAVAILABLE[reply.error_type],
                                 f"it could not be mounted ({reply.message})")
            return False
        if not isinstance(reply, p.Ack):
            raise SandboxError(f"the guest could not mount the shared folder: {reply}")
        return True

    async def _left_out(self, port: Literal["share", "wheelhouse"], why: str) -> None:
        log.warning("the %s is left out: %s", "shared folder" if port == "share" else port, why)
        if port == "share":
            self.share_failure = why
        else:
            self.wheelhouse_failure = why
        await self._stop_serving(port)

    async def _serve(self, port: Literal["share", "wheelhouse"],
                     settings: ShareSettings) -> ShareTransport:
        assert self.run is not None
        if self._ports is not None:
            sock = self._ports.take("share" if port == "share" else "wheels")
        else:
            path = self.run.share_socket if port == "share" else self.run.wheelhouse_socket
            sock = await asyncio.to_thread(self._connect_share, path)
        transport = ShareTransport(sock, FuseServer(
            settings, lambda message: self.on_share_notice(message)), name=port)
        transport.start()
        return transport

    async def _stop_serving(self, port: Literal["share", "wheelhouse"] | None = None) -> None:
        if port in (None, "share") and self._share is not None:
            await asyncio.to_thread(self._share.stop)
            self._share = None
        if port in (None, "wheelhouse") and self._wheelhouse is not None:
            await asyncio.to_thread(self._wheelhouse.stop)
            self._wheelhouse = None

    def _connect_share(self, path: Path) -> socket.socket:
        assert self.proc is not None
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(path))
            if peer_pid(sock) != self.proc.pid:
                raise SandboxError(f"{path} is not served by this VM's QEMU")
        except BaseException:
            sock.close()
            raise
        return sock

    # --- hand-over between event loops (the kernel starts its VM in a thread) ---------------
    async def detach(self) -> None:
        """Readies a started VM for ``attach`` on another event loop."""
        if self._qmp is not None:
            await self._qmp.disconnect()
            self._qmp = None  # reconnected on demand
        assert self.channel is not None
        self._handover = await self.channel.detach()
        self.channel = None

    async def attach(self) -> None:
        assert self._handover is not None and self.run is not None and self.proc is not None
        cmd, evt, next_id = self._handover
        self._handover = None
        self.channel = self._new_channel(first_id=next_id)
        await self.channel.connect(sockets=(cmd, evt))

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
        """Ends QEMU, whatever the guest is doing, and the spare's making. Nothing in the guest
        outlives it (the root disk is read-only, the rest is RAM), so the guest is not asked
        to power off first, which would slow every shutdown and restart."""
        spare, self._spare_task = self._spare_task, None
        try:
            if spare is not None:
                spare.cancel()
                # Not ``await spare``: a cancellation of this stop would reach the spare's own
                # clean-up. Its VM stops on its way out.
                await asyncio.wait({spare})
        finally:
            await self._teardown()

    async def _teardown(self) -> None:
        await self._stop_serving()
        if self._qmp is not None:
            with contextlib.suppress(Exception):
                await self._qmp.disconnect()
            self._qmp = None
        if self.proc is not None:
            await self.proc.terminate()
        if self.channel is not None:
            await self.channel.close()
            self.channel = None
        if self._ports is not None:
            self._ports.close()
            self._ports = None
        self._first_reseed = None
        if self.run is not None:
            shutil.rmtree(self.run.path, ignore_errors=True)
            self.run = None
        if self._capture_ram is not None:
            self._capture_ram.discard()
            self._capture_ram = None
