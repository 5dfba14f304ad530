"""Launching QEMU to restore a snapshot, before anything heavy is imported when the kernel
starts: everything a restore needs is known from the settings, the image and the cache."""

import contextlib
import os
import shutil
import signal
from dataclasses import dataclass

from sandbox_kernel.image.store import ImagePaths, image_paths
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


@dataclass(frozen=True)
class HeadStart:
    """A restore launched before the VM manager was imported (``launch_early``)."""

    snap: SnapshotPaths
    image: ImagePaths
    accel: str
    run: RunDir
    proc: QemuProcess
    incoming: str

    def discard(self) -> None:
        """For a head start nobody takes over."""
        self.proc.signal(signal.SIGKILL)
        self.proc.popen.wait()
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
    run = RunDir.create()
    try:
        proc, incoming = launch_restore(config, image, verdict.accel, run, snap)
    except OSError:
        shutil.rmtree(run.path, ignore_errors=True)
        if snap.claimed:
            snap.discard()
        return None  # the VM manager finds out again, and says why
    return HeadStart(snap, image, verdict.accel, run, proc, incoming)
