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
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sandbox_kernel import paths
from sandbox_kernel.image.store import ImagePaths, image_paths
from sandbox_kernel.vm.config import VMConfig
from sandbox_kernel.vm.process import QemuProcess
from sandbox_kernel.vm.qemu import RunDir, command_line, cpu_model, qemu_version

if TYPE_CHECKING:
    from qemu.qmp import QMPClient

    from sandbox_kernel.vm.machine import SandboxVM

log = logging.getLogger(__name__)
_CAPTURE_TIMEOUT_S = 180.0
_KEPT_SNAPSHOTS = 3


@dataclass(frozen=True)
class SnapshotPaths:
    key: str

    @property
    def state(self) -> Path:
        return paths.snapshots_dir() / f"{self.key}.state"

    @property
    def lock(self) -> Path:
        return paths.snapshots_dir() / f"{self.key}.lock"

    def exists(self) -> bool:
        return self.state.exists()

    def open(self) -> int:
        """A descriptor for QEMU's ``-incoming fd:``: it reads the file itself, about 80 ms
        for 240 MB, where piping it through ``exec:cat`` took 200 to 600 ms."""
        fd = os.open(self.state, os.O_RDONLY | os.O_CLOEXEC)
        with contextlib.suppress(OSError):
            os.utime(fd)  # last use, for pruning
        return fd

    def discard(self) -> None:
        self.state.unlink(missing_ok=True)


def launch_restore(config: VMConfig, image: ImagePaths, accel: str, run: RunDir,
                   snap: SnapshotPaths) -> QemuProcess:
    fd = snap.open()
    try:
        return QemuProcess(command_line(config, image, accel, run, f"fd:{fd}"), run.qemu_log,
                           pass_fds=(fd,))
    finally:
        os.close(fd)  # QEMU has its own copy


def prune_snapshots(keep: SnapshotPaths, limit: int = _KEPT_SNAPSHOTS) -> None:
    """Deletes all but the ``limit`` most recently used snapshots (``keep`` among them): each
    change of image, agent or settings makes a new one of some 200 MB."""
    def last_used(state: Path) -> float:
        try:
            return state.stat().st_mtime
        except FileNotFoundError:
            return 0.0  # another kernel pruned it first

    others = [f for f in paths.snapshots_dir().glob("*.state") if f != keep.state]
    others.sort(key=last_used, reverse=True)
    for stale in others[limit - 1:]:
        old = SnapshotPaths(stale.stem)
        old.discard()
        old.lock.unlink(missing_ok=True)
        log.info("deleted a snapshot not used lately: %s", stale)


def snapshot_for(config: VMConfig, image: ImagePaths, accel: str) -> SnapshotPaths:
    key = json.dumps({"image": image.image_id, "qemu": qemu_version(config.qemu_binary),
                      "machine": config.machine_key(), "accel": accel,
                      "cpu": cpu_model(accel)}, sort_keys=True)
    return SnapshotPaths(hashlib.sha256(key.encode()).hexdigest()[:20])


async def _migration_status(qmp: "QMPClient") -> str:
    reply = await qmp.execute("query-migrate")
    return str(reply.get("status", "")) if isinstance(reply, dict) else ""


async def capture(vm: "SandboxVM", snap: SnapshotPaths) -> bool:
    """Warms ``vm``, saves its memory to ``snap``, and lets it run on (reseeded)."""
    from sandbox_kernel import protocol as p

    snap.state.parent.mkdir(parents=True, exist_ok=True)
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
        await qmp.execute("migrate-set-parameters", {"max-bandwidth": 1 << 40})
        part = snap.state.with_name(f"{snap.state.name}.{os.getpid()}.part")
        await qmp.execute("stop")
        try:
            # QEMU writes the file itself through a passed descriptor. With ``exec:cat >``,
            # "completed" meant QEMU had filled the pipe, not that cat had written the file.
            out = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
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
            if status == "completed":
                part.replace(snap.state)  # atomic: a reader never sees half a snapshot
        finally:
            part.unlink(missing_ok=True)
            await qmp.execute("cont")
    # This VM now shares its RNG state with every VM that will be restored from the file.
    await vm.reseed()
    if status != "completed":
        log.warning("taking a snapshot failed (%s); later starts will boot cold", status)
        return False
    log.info("snapshot taken in %.1f s: %s (%.0f MB)", time.monotonic() - started, snap.state,
             snap.state.stat().st_size / 2**20)
    prune_snapshots(keep=snap)
    return True


@dataclass
class EarlyRestore:
    """A VM started while the kernel process is still starting up, to overlap with it: a
    snapshot restore when one matches, otherwise a cold boot (``snap`` is None)."""

    config: VMConfig
    image: ImagePaths
    accel: str
    snap: SnapshotPaths | None
    run: RunDir
    proc: QemuProcess

    @classmethod
    def begin(cls, config: VMConfig | None = None) -> "EarlyRestore | None":
        config = config or VMConfig()
        image = image_paths(config.image)
        if not image.base_complete() or not image.initramfs().exists():
            return None
        if config.accel == "auto":
            from sandbox_kernel.vm.accel import cached_verdict

            verdict = cached_verdict(config)
            if verdict is None:
                return None
            accel = verdict.accel
        else:
            accel = config.accel
        snap: SnapshotPaths | None = snapshot_for(config, image, accel)
        if not config.snapshots or snap is None or not snap.exists():
            snap = None
        run = RunDir.create()
        if snap is not None:
            proc = launch_restore(config, image, accel, run, snap)
        else:
            proc = QemuProcess(command_line(config, image, accel, run), run.qemu_log)
        return cls(config, image, accel, snap, run, proc)

    def matches(self, config: VMConfig) -> bool:
        return (config.snapshots == self.config.snapshots
                and config.machine_key() == self.config.machine_key()
                and config.accel in ("auto", self.accel)
                and config.qemu_binary == self.config.qemu_binary)

    def discard(self) -> None:
        self.proc.signal(signal.SIGKILL)
        self.proc.popen.wait()
        shutil.rmtree(self.run.path, ignore_errors=True)


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
        return f"on; ready ({snap.state.stat().st_size / 2**20:.0f} MB at {snap.state})"
    return "on; none for this image yet (the next start takes one)"
