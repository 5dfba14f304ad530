"""The snapshot store: memory snapshots in the cache, keyed by all they depend on, each a
folder of two files (``ram``, the guest's memory, and ``state``, QEMU's device state).

Beside each snapshot, its *spare*: one more, taken by a boot of its own and restored by one VM
only, which claims it (an atomic rename) and deletes it once QEMU holds its files. Every VM
restored from one snapshot shares its Python hash seed and address layout; a VM restored from a
spare shares them with none (see machine.SandboxVM.make_spare)."""

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox_kernel import paths
from sandbox_kernel.image.store import ImagePaths, image_paths
from sandbox_kernel.vm.config import VMConfig
from sandbox_kernel.vm.qemu import GuestRam, cpu_model, kernel_args, qemu_version
from sandbox_kernel.vm.verdicts import configured_verdict

log = logging.getLogger(__name__)
_KEPT_SNAPSHOTS = 3
# 2: the guest's RAM is a file of its own, mapped copy-on-write by every restore, and the
# migration stream holds only the device state. 3: a third serial port, for the shared folder.
# 4: a fourth, for the wheelhouse. 5: saved from a running guest, which a restore runs
# without being told.
SNAPSHOT_FORMAT = 5
_CAPTURE_PREFIX = ".capture-"
_CLAIMED_PREFIX = ".claimed-"
_SPARE_SUFFIX = "-spare"


@dataclass(frozen=True)
class SnapshotPaths:
    """A snapshot is a folder holding ``state`` and ``ram``; it appears whole, by a rename.
    ``about.json`` in it says what its key was made of (what `image list` reports)."""

    key: str
    about: str = field(default="", compare=False)

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

    def read_about(self) -> dict[str, Any]:
        try:
            about: dict[str, Any] = json.loads((self.folder / "about.json").read_text())
        except (OSError, ValueError):
            return {}
        return about

    def exists(self) -> bool:
        return self.folder.is_dir()

    @property
    def claimed(self) -> bool:
        """A spare taken by one VM: deleted once its restore has the files."""
        return self.key.startswith(_CLAIMED_PREFIX)

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

    def commit(self, snap: SnapshotPaths) -> None:
        """Makes the captured files ``snap``: synced first, since a snapshot that a crash left
        half-written would hang every restore until its deadline; then one atomic rename."""
        (self.folder / "about.json").write_text(snap.about)
        for path in (self.ram, self.state, self.folder):
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        self.folder.rename(snap.folder)


def spare_of(snap: SnapshotPaths) -> SnapshotPaths:
    return SnapshotPaths(f"{snap.key}{_SPARE_SUFFIX}", about=snap.about)


def claim(spare: SnapshotPaths) -> SnapshotPaths | None:
    """``spare``, now this process's alone (under another name); None if there is none, or
    another process claimed it first."""
    claimed = SnapshotPaths(f"{_CLAIMED_PREFIX}{os.getpid()}-{os.urandom(6).hex()}",
                            about=spare.about)
    try:
        spare.folder.rename(claimed.folder)
    except OSError:  # gone, or never made
        return None
    with contextlib.suppress(OSError):  # a use of its snapshot's, for pruning
        os.utime(spare.folder.with_name(spare.key.removesuffix(_SPARE_SUFFIX)))
    return claimed


def _sweep_dead_captures(base: Path) -> None:
    """Removes the RAM files of captures, and the spares claimed, by kernels that were killed."""
    for prefix in (_CAPTURE_PREFIX, _CLAIMED_PREFIX):
        for folder in base.glob(f"{prefix}*"):
            pid = folder.name.removeprefix(prefix).split("-", 1)[0]
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def capture_lock(snap: SnapshotPaths) -> Iterator[bool]:
    """True while this process holds the right to take ``snap``; False when another does."""
    snap.lock.parent.mkdir(parents=True, exist_ok=True)
    with snap.lock.open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True


def prune_snapshots(keep: SnapshotPaths, limit: int = _KEPT_SNAPSHOTS) -> None:
    """Deletes all but the ``limit`` most recently used snapshots (``keep`` among them): each
    change of image, agent or settings makes a new one of some 250 MB."""
    base = paths.snapshots_dir()

    def last_used(folder: Path) -> float:
        try:
            return folder.stat().st_mtime
        except FileNotFoundError:
            return 0.0  # another kernel pruned it first

    def key_of(folder: Path) -> str:  # a spare goes with its snapshot
        return folder.name.removesuffix(_SPARE_SUFFIX)

    kept_key = key_of(keep.folder)
    others: dict[str, float] = {}
    for folder in base.iterdir():
        if folder.is_dir() and not folder.name.startswith(".") and key_of(folder) != kept_key:
            others[key_of(folder)] = max(others.get(key_of(folder), 0.0), last_used(folder))
    for stale in sorted(others, key=others.__getitem__, reverse=True)[limit - 1:]:
        for old in (SnapshotPaths(stale), spare_of(SnapshotPaths(stale))):
            if old.exists():
                old.discard()
                log.info("deleted a snapshot not used lately: %s", old.folder)
            old.lock.unlink(missing_ok=True)
    _sweep_dead_captures(base)


def snapshot_for(config: VMConfig, image: ImagePaths, accel: str) -> SnapshotPaths:
    key = json.dumps({"image": image.image_id, "qemu": qemu_version(config.qemu_binary),
                      "machine": config.machine_key(), "accel": accel,
                      "cpu": cpu_model(accel), "kernel_args": kernel_args(config),
                      "format": SNAPSHOT_FORMAT}, sort_keys=True)
    return SnapshotPaths(hashlib.sha256(key.encode()).hexdigest()[:20], about=key)


def snapshots_of(image: ImagePaths) -> list[SnapshotPaths]:
    """The snapshots taken of this build of ``image`` with its current agent, whatever the
    VM settings."""
    try:
        folders = [f for f in paths.snapshots_dir().iterdir()
                   if f.is_dir() and not f.name.startswith(".")]
    except FileNotFoundError:
        return []
    snaps = [SnapshotPaths(f.name) for f in folders if not f.name.endswith(_SPARE_SUFFIX)]
    return [s for s in snaps if s.read_about().get("image") == image.image_id]


def describe(config: VMConfig) -> str:
    if not config.snapshots:
        return "off (SANDBOX_KERNEL_SNAPSHOTS=0 or the kernel's snapshots setting)"
    img = image_paths(config.image)
    verdict = configured_verdict(config)
    if not img.base_complete() or verdict is None:
        return "on; none taken yet"
    snap = snapshot_for(config, img, verdict.accel)
    if snap.exists():
        return f"on; ready ({snap.disk_bytes() / 2**20:.0f} MB on disk at {snap.folder})"
    return "on; none for this image yet (the next start takes one)"
