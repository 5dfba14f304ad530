"""VM settings. Environment variables override the defaults (handy for CI and the CLI)."""

import os
from dataclasses import dataclass, field, fields
from typing import Literal

from sandbox_kernel.share.plan import SharePlan
from sandbox_kernel.share.wheelhouse import WheelhousePlan

Accel = Literal["auto", "kvm", "tcg"]


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() not in ("0", "false", "no", "off")


@dataclass
class VMConfig:
    image: str = "default"
    memory_mb: int = 1024
    cpus: int = 2  # two vCPUs let the agent and the worker start side by side under TCG
    accel: Accel = field(
        default_factory=lambda: os.environ.get("SANDBOX_KERNEL_ACCEL", "auto"))  # type: ignore
    snapshots: bool = field(default_factory=lambda: _env_bool("SANDBOX_KERNEL_SNAPSHOTS", True))
    qemu_binary: str = "qemu-system-x86_64"
    tcg_cache_mb: int = 64
    tmp_size: str = "256m"
    home_size: str = "256m"
    # The cgroup of the cell's processes: memory (0: all the RAM but a quarter or 160 MB)
    # and how many processes.
    worker_memory_mb: int = 0
    worker_processes: int = 1024
    # A restored VM runs a freshly executed Python rather than the snapshot's, whose hash
    # seed and address layout every VM from the snapshot would share.
    fresh_python: bool = False
    # Each restore takes a spare snapshot, one that no other VM has run from, when one is
    # ready: its Python has a hash seed and address layout of its own at no cost to the start.
    # The VM that takes one makes the next in the background (a boot's worth of CPU).
    spare_snapshots: bool = field(
        default_factory=lambda: _env_bool("SANDBOX_KERNEL_SPARE_SNAPSHOTS", True))
    # One deadline per boot attempt, and a retry: about one TCG boot in 30 hangs.
    boot_timeout_s: float = 60.0
    boot_attempts: int = 2
    # Generous: many kernels restoring at once on a small host each take far longer than one.
    restore_timeout_s: float = 30.0
    # The host folder the VM sees, or why none (None: not asked, as for `sandbox-kernel exec`).
    # Mounted after the start, so that one snapshot serves every folder: not in machine_key.
    share: SharePlan | None = None
    # The host's folder of wheels for pip, or why it is not shared (None: not asked). Mounted
    # after the start too, so that one snapshot serves every wheelhouse.
    wheelhouse: WheelhousePlan | None = None

    def __post_init__(self) -> None:
        if self.accel not in ("auto", "kvm", "tcg"):
            raise ValueError(f"accel must be auto, kvm or tcg, not {self.accel!r}")
        if self.memory_mb < 256 or self.cpus < 1:
            raise ValueError("a VM needs at least 256 MB of memory and one vCPU")
        if self.worker_memory_mb < 0 or self.worker_processes < 16:
            raise ValueError("the worker needs a memory cap of 0 (automatic) or more MB, "
                             "and at least 16 processes")

    def launch_settings(self) -> dict[str, object]:
        """What launching a restore depends on (``restore.launch_early``): a launch made with
        one config serves another with the same."""
        wanted = ("image", "accel", "snapshots", "spare_snapshots", "fresh_python",
                  "qemu_binary")
        return {**self.machine_key(), **{name: getattr(self, name) for name in wanted}}

    def machine_key(self) -> dict[str, object]:
        """What a memory snapshot depends on."""
        wanted = ("image", "memory_mb", "cpus", "tmp_size", "home_size", "tcg_cache_mb",
                  "worker_memory_mb", "worker_processes")
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name in wanted}
