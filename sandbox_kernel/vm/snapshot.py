"""Memory snapshots of a warmed guest, stored in the cache, keyed by all they depend on."""

import asyncio
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sandbox_kernel import paths
from sandbox_kernel.image.store import ImagePaths, image_paths
from sandbox_kernel.vm.config import VMConfig
from sandbox_kernel.vm.process import QemuProcess
from sandbox_kernel.vm.qemu import (
    GuestRam,
    RunDir,
    command_line,
    cpu_model,
    kernel_args,
    qemu_version,
)

if TYPE_CHECKING:
    from qemu.qmp import QMPClient

    from sandbox_kernel.vm.machine import SandboxVM

log = logging.getLogger(__name__)
_CAPTURE_TIMEOUT_S = 180.0
_KEPT_SNAPSHOTS = 3
# 2: the guest's RAM is a file of its own, mapped copy-on-write by every restore, and the
# migration stream holds only the device state (1: one stream with all the RAM in it).
SNAPSHOT_FORMAT = 2
# Leaves RAM that lives in a shared file out of the migration stream. QEMU 7.2 has no other
# way (``mapped-ram`` came with 9.0); both sides of a migration must turn it on.
IGNORE_SHARED = {"capabilities": [{"capability": "x-ignore-shared", "state": True}]}


@dataclass(frozen=True)
class SnapshotPaths:
    """A snapshot is a folder holding ``state`` and ``ram``; it appears whole, by a rename."""

    key: str

    @property
    def folder(self) -> Path:
        return paths.snapshots_dir() / self.key

    @property
    def state(self) -> Path:
        return self.folder / "state"

    @property
    def ram(self) -> Path:
        return self.folder / "ram"

    @property
    def lock(self) -> Path:
        return paths.snapshots_dir() / f"{self.key}.lock"

    def exists(self) -> bool:
        return self.folder.is_dir()

    def disk_bytes(self) -> int:
        return sum(f.stat().st_blocks * 512 for f in (self.state, self.ram))

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


@dataclass(frozen=True)
class CaptureRam:
    """The guest RAM file of a boot that will take a snapshot: it becomes the snapshot's."""

    folder: Path

    @classmethod
    def create(cls) -> "CaptureRam":
        base = paths.snapshots_dir()
        base.mkdir(parents=True, exist_ok=True)
        _sweep_dead_captures(base)
        folder = Path(tempfile.mkdtemp(prefix=f"{_CAPTURE_PREFIX}{os.getpid()}-", dir=base))
        return cls(folder)

    @property
    def ram(self) -> Path:
        return self.folder / "ram"

    @property
    def state(self) -> Path:
        return self.folder / "state"

    def backing(self) -> GuestRam:
        return GuestRam(str(self.ram), shared=True)

    def discard(self) -> None:
        """A VM still running on the file keeps its mapping; only the name goes."""
        shutil.rmtree(self.folder, ignore_errors=True)


_CAPTURE_PREFIX = ".capture-"


def _sweep_dead_captures(base: Path) -> None:
    """Removes the RAM files of captures whose kernel was killed."""
    for capture in base.glob(f"{_CAPTURE_PREFIX}*"):
        pid = capture.name.removeprefix(_CAPTURE_PREFIX).split("-", 1)[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(capture, ignore_errors=True)


def launch_restore(config: VMConfig, image: ImagePaths, accel: str, run: RunDir,
                   snap: SnapshotPaths) -> tuple[QemuProcess, str]:
    """QEMU waiting for ``migrate-incoming`` with the returned URI (``start_incoming``).

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


async def start_incoming(qmp: "QMPClient", uri: str) -> None:
    await qmp.execute("migrate-set-capabilities", IGNORE_SHARED)
    await qmp.execute("migrate-incoming", {"uri": uri})


def prune_snapshots(keep: SnapshotPaths, limit: int = _KEPT_SNAPSHOTS) -> None:
    """Deletes all but the ``limit`` most recently used snapshots (``keep`` among them): each
    change of image, agent or settings makes a new one of some 250 MB. Also deletes what
    killed captures and older snapshot formats left behind."""
    base = paths.snapshots_dir()

    def last_used(folder: Path) -> float:
        try:
            return folder.stat().st_mtime
        except FileNotFoundError:
            return 0.0  # another kernel pruned it first

    others = [f for f in base.iterdir() if f.is_dir() and not f.name.startswith(".")
              and f != keep.folder]
    others.sort(key=last_used, reverse=True)
    for stale in others[limit - 1:]:
        old = SnapshotPaths(stale.name)
        old.discard()
        old.lock.unlink(missing_ok=True)
        log.info("deleted a snapshot not used lately: %s", stale)
    for legacy in base.glob("*.state"):  # format 1
        legacy.unlink(missing_ok=True)
        legacy.with_suffix(".lock").unlink(missing_ok=True)
    _sweep_dead_captures(base)


def snapshot_for(config: VMConfig, image: ImagePaths, accel: str) -> SnapshotPaths:
    key = json.dumps({"image": image.image_id, "qemu": qemu_version(config.qemu_binary),
                      "machine": config.machine_key(), "accel": accel,
                      "cpu": cpu_model(accel), "kernel_args": kernel_args(config),
                      "format": SNAPSHOT_FORMAT}, sort_keys=True)
    return SnapshotPaths(hashlib.sha256(key.encode()).hexdigest()[:20])


def _sync_files(folder: Path) -> None:
    # A snapshot that a crash left half-written would hang every restore until its deadline.
    for path in (folder / "ram", folder / "state", folder):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


async def _migration_status(qmp: "QMPClient") -> str:
    reply = await qmp.execute("query-migrate")
    return str(reply.get("status", "")) if isinstance(reply, dict) else ""


async def capture(vm: "SandboxVM", snap: SnapshotPaths, ram: CaptureRam) -> bool:
    """Warms ``vm``, booted on ``ram``, and saves it as ``snap``. On success the VM is gone (its
    RAM is the snapshot's now, and must not change); otherwise it runs on, reseeded."""
    from sandbox_kernel import protocol as p

    snap.folder.parent.mkdir(parents=True, exist_ok=True)
    with snap.lock.open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # another kernel is taking this snapshot right now
        if snap.exists():
            return False
        started = time.monotonic()
        await asyncio.wait_for(vm.request(p.Warm), _CAPTURE_TIMEOUT_S)
        await asyncio.wait_for(vm.request(p.PrepareSnapshot), _CAPTURE_TIMEOUT_S)
        qmp = await vm.qmp()
        await qmp.execute("migrate-set-capabilities", IGNORE_SHARED)
        await qmp.execute("stop")
        # QEMU writes the file itself through a passed descriptor. With ``exec:cat >``,
        # "completed" meant QEMU had filled the pipe, not that cat had written the file.
        out = os.open(ram.state, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            qmp.send_fd_scm(out)
            await qmp.execute("getfd", {"fdname": "snapshot"})
        finally:
            os.close(out)
        await qmp.execute("migrate", {"uri": "fd:snapshot"})
        # Migration status is polled: QMP gives no future to await.
        while (status := await _migration_status(qmp)) not in (  # noqa: ASYNC110
                "completed", "failed", "cancelled"):
            await asyncio.sleep(0.01)
        if status != "completed":
            await qmp.execute("cont")
            await vm.reseed()
            log.warning("taking a snapshot failed (%s); later starts will boot cold", status)
            return False
        await vm.stop()
        await asyncio.to_thread(_sync_files, ram.folder)
        ram.folder.rename(snap.folder)  # atomic: a reader never sees half a snapshot
    log.info("snapshot taken in %.1f s: %s (%.0f MB on disk)", time.monotonic() - started,
             snap.folder, snap.disk_bytes() / 2**20)
    prune_snapshots(keep=snap)
    return True


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


def launch_early(config: VMConfig) -> HeadStart | None:
    """Launches QEMU for a restore when everything it needs is known already: the image,
    the accelerator's cached verdict and a snapshot. Imports nothing heavy."""
    image = image_paths(config.image)
    if not config.snapshots or not image.base_complete() or not image.initramfs().exists():
        return None
    accel: str = config.accel
    if accel == "auto":
        from sandbox_kernel.vm.accel import cached_verdict

        verdict = cached_verdict(config)
        if verdict is None:
            return None
        accel = verdict.accel
    snap = snapshot_for(config, image, accel)
    if not snap.exists():
        return None
    run = RunDir.create()
    try:
        proc, incoming = launch_restore(config, image, accel, run, snap)
    except OSError:
        shutil.rmtree(run.path, ignore_errors=True)
        return None  # the VM manager finds out again, and says why
    return HeadStart(snap, image, accel, run, proc, incoming)


def describe(config: VMConfig) -> str:
    if not config.snapshots:
        return "off (SANDBOX_KERNEL_SNAPSHOTS=0 or the kernel's snapshots setting)"
    from sandbox_kernel.vm.accel import cached_verdict

    img = image_paths(config.image)
    verdict = cached_verdict(config)
    if not img.base_complete() or verdict is None:
        return "on; none taken yet"
    snap = snapshot_for(config, img, verdict.accel)
    if snap.exists():
        return f"on; ready ({snap.disk_bytes() / 2**20:.0f} MB on disk at {snap.folder})"
    return "on; none for this image yet (the next start takes one)"
