"""Launching QEMU to restore a snapshot, before anything heavy is imported when the kernel
starts: everything a restore needs is known from the settings, the image and the cache. QEMU
loads the state as it starts and runs the guest, whose first request, a reseed, is waiting in
its port: the guest's first work after the restore (under TCG, tens of ms of code that QEMU
must translate afresh) needs nothing more from the host, and overlaps the kernel's start."""

import contextlib
import os
import shutil
import signal
from dataclasses import dataclass

from sandbox_kernel.image.store import ImagePaths, image_paths
from sandbox_kernel.vm.config import VMConfig
from sandbox_kernel.vm.migration import load_commands
from sandbox_kernel.vm.port_pairs import LOADER, PortPairs, first_reseed
from sandbox_kernel.vm.process import QemuProcess
from sandbox_kernel.vm.qemu import GuestRam, command_line
from sandbox_kernel.vm.rundir import RunDir
from sandbox_kernel.vm.snapshot_store import SnapshotPaths, claim, snapshot_for, spare_of
from sandbox_kernel.vm.timezone import host_timezone
from sandbox_kernel.vm.verdicts import configured_verdict


def launch_restore(config: VMConfig, image: ImagePaths, accel: str, run: RunDir,
                   snap: SnapshotPaths) -> tuple[QemuProcess, PortPairs]:
    """QEMU restoring ``snap``, and the host's ends of its ports, a reseed written to the
    command port (``port_pairs.FIRST_RESEED_ID``). A spare's guest keeps its own Python;
    the shared snapshot's gets a fresh one if the settings ask for it.

    QEMU gets both files as open descriptors: they come from one snapshot even if it is
    replaced meanwhile, and QEMU, which creates a missing RAM file, never starts a guest
    on an empty one."""
    folder = os.open(snap.folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    opened: list[int] = []
    ports = PortPairs.create()
    try:
        with contextlib.suppress(OSError):
            os.utime(folder)  # last use, for pruning
        for name in ("ram", "state"):
            opened.append(os.open(name, os.O_RDONLY | os.O_CLOEXEC, dir_fd=folder))
        ram, state = opened
        ports.host[LOADER].sendall(load_commands(f"fd:{state}"))
        ports.host["cmd"].sendall(first_reseed(config.fresh_python and not snap.claimed,
                                               host_timezone()))
        fds = ports.guest_fds()
        cmd = command_line(config, image, accel, run, "defer",
                           GuestRam(f"/proc/self/fd/{ram}", shared=False), fds)
        proc = QemuProcess(cmd, run.qemu_log, pass_fds=(ram, state, *fds.values()))
    except BaseException:
        ports.close()
        raise
    finally:
        for fd in (folder, *opened):
            os.close(fd)  # QEMU has its own copies
        ports.close_guest_ends()
    return proc, ports


@dataclass(frozen=True)
class HeadStart:
    """A restore launched before the VM manager was imported (``launch_early``)."""

    snap: SnapshotPaths
    image: ImagePaths
    accel: str
    run: RunDir
    proc: QemuProcess
    ports: PortPairs

    def discard(self) -> None:
        """For a head start nobody takes over."""
        self.proc.signal(signal.SIGKILL)
        self.proc.popen.wait()
        self.ports.close()
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
            proc, ports = launch_restore(config, image, verdict.accel, run, snap)
        except BaseException:
            shutil.rmtree(run.path, ignore_errors=True)
            raise
    except BaseException as exc:
        if snap.claimed:  # nobody else can have it now
            snap.discard()
        if isinstance(exc, OSError):
            return None  # the VM manager finds out again, and says why
        raise
    return HeadStart(snap, image, verdict.accel, run, proc, ports)
