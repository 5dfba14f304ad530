"""Launching QEMU to restore a snapshot, and resuming the guest, before anything heavy is
imported when the kernel starts: everything a restore needs is known from the settings, the
image and the cache, and the guest's first work after it (under TCG, tens of ms of code that
QEMU must translate afresh) then overlaps the import of the VM manager and pydantic."""

import asyncio
import contextlib
import dataclasses
import logging
import os
import shutil
import signal
import socket
from dataclasses import dataclass
from pathlib import Path

from qemu.qmp import QMPClient

from sandbox_kernel.image.store import ImagePaths, image_paths
from sandbox_kernel.vm import migration
from sandbox_kernel.vm.config import VMConfig
from sandbox_kernel.vm.process import QemuProcess
from sandbox_kernel.vm.qemu import GuestRam, command_line
from sandbox_kernel.vm.rundir import RunDir
from sandbox_kernel.vm.snapshot_store import SnapshotPaths, claim, snapshot_for, spare_of
from sandbox_kernel.vm.verdicts import configured_verdict


def launch_restore(config: VMConfig, image: ImagePaths, accel: str, run: RunDir,
                   snap: SnapshotPaths) -> tuple[QemuProcess, str]:
    """QEMU waiting for its state on the returned migration URI (``migration.load_state``).

    QEMU gets both files as open descriptors: they come from one snapshot even if it is
    replaced meanwhile, and QEMU, which creates a missing RAM file, never starts a guest
    on an empty one."""
    folder = os.open(snap.folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    opened: list[int] = []
    try:
        with contextlib.suppress(OSError):
            os.utime(folder)  # last use, for pruning
        for name in ("ram", "state"):
            opened.append(os.open(name, os.O_RDONLY | os.O_CLOEXEC, dir_fd=folder))
        ram, state = opened
        cmd = command_line(config, image, accel, run, "defer",
                           GuestRam(f"/proc/self/fd/{ram}", shared=False))
        return QemuProcess(cmd, run.qemu_log, pass_fds=(ram, state)), f"fd:{state}"
    finally:
        for fd in (folder, *opened):
            os.close(fd)  # QEMU has its own copies


log = logging.getLogger(__name__)
_POLL_S = 0.002


@dataclass(frozen=True)
class Resumed:
    """A head start's guest running again: its command and event ports connected (the
    channel checks whose they are when it takes them), the snapshot loaded over ``qmp``."""

    ports: tuple[socket.socket, socket.socket]
    qmp: QMPClient


@dataclass(frozen=True)
class HeadStart:
    """A restore launched before the VM manager was imported (``launch_early``), and perhaps
    resumed (``resume_early``)."""

    snap: SnapshotPaths
    image: ImagePaths
    accel: str
    run: RunDir
    proc: QemuProcess
    incoming: str
    resumed: Resumed | None = None

    def discard(self) -> None:
        """For a head start nobody takes over."""
        self.proc.signal(signal.SIGKILL)
        self.proc.popen.wait()
        if self.resumed is not None:
            for port in self.resumed.ports:
                port.close()
        shutil.rmtree(self.run.path, ignore_errors=True)
        if self.snap.claimed:
            self.snap.discard()


def launch_early(config: VMConfig) -> HeadStart | None:
    """Launches QEMU for a restore when everything it needs is known already: the image,
    the accelerator (set, or a cached verdict) and a snapshot."""
    image = image_paths(config.image)
    if not config.snapshots or not image.base_complete() or not image.initramfs().exists():
        return None
    if image.damage() is not None:
        return None  # the VM manager's start says what is wrong
    verdict = configured_verdict(config)
    if verdict is None:
        return None
    snap = snapshot_for(config, image, verdict.accel)
    spare = claim(spare_of(snap)) if config.spare_snapshots else None
    if spare is not None:
        snap = spare  # the VM manager deletes it once the restore has its files
    elif not snap.exists():
        return None
    try:
        run = RunDir.create()
        try:
            proc, incoming = launch_restore(config, image, verdict.accel, run, snap)
        except BaseException:
            shutil.rmtree(run.path, ignore_errors=True)
            raise
    except BaseException as exc:
        if snap.claimed:  # nobody else can have it now
            snap.discard()
        if isinstance(exc, OSError):
            return None  # the VM manager finds out again, and says why
        raise
    return HeadStart(snap, image, verdict.accel, run, proc, incoming)


async def resume_early(head: HeadStart, timeout_s: float) -> HeadStart | None:
    """``head`` with its guest running again; None if that failed (``head`` is discarded,
    and the VM manager starts a VM its own way, and says what went wrong). Cancelled, it
    discards ``head`` too."""
    ports: list[socket.socket] = []
    qmp = QMPClient("sandbox-vm")
    try:
        async with asyncio.timeout(timeout_s):
            # Connected before the guest runs again, as when the snapshot was taken.
            for path in (head.run.cmd_socket, head.run.evt_socket):
                ports.append(await _connected(path, head.proc))
            await migration.connect(qmp, head.run.qmp_socket,
                                    lambda: head.proc.returncode is not None)
            await migration.resume(qmp, head.incoming)
    except BaseException as exc:
        log.debug("early resume failed: %r", exc)
        for port in ports:
            port.close()
        head.discard()
        with contextlib.suppress(BaseException):
            await qmp.disconnect()
        if not isinstance(exc, Exception):
            raise
        return None
    return dataclasses.replace(head, resumed=Resumed((ports[0], ports[1]), qmp))


async def _connected(path: Path, proc: QemuProcess) -> socket.socket:
    loop = asyncio.get_running_loop()
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, str(path))
            return sock
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            if proc.returncode is not None:
                raise
            await asyncio.sleep(_POLL_S)
        except BaseException:
            sock.close()
            raise
