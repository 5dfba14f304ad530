"""Memory snapshots of a warmed guest, stored in the cache, keyed by all they depend on."""

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from sandbox_kernel import paths
from sandbox_kernel.image.store import ImagePaths, image_paths
from sandbox_kernel.vm.config import VMConfig
from sandbox_kernel.vm.qemu import qemu_version


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


def snapshot_for(config: VMConfig, image: ImagePaths, accel: str) -> SnapshotPaths:
    key = json.dumps({"image": image.image_id, "qemu": qemu_version(config.qemu_binary),
                      "machine": config.machine_key(), "accel": accel}, sort_keys=True)
    return SnapshotPaths(hashlib.sha256(key.encode()).hexdigest()[:20])


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
