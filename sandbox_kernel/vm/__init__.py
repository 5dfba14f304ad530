"""The VM manager: QEMU microvm lifecycle, accelerator choice and snapshots."""

from sandbox_kernel.vm.config import VMConfig
from sandbox_kernel.vm.machine import SandboxVM

__all__ = ["SandboxVM", "VMConfig"]
