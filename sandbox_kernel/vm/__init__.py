"""The VM manager: QEMU microvm lifecycle, accelerator choice and snapshots."""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandbox_kernel.vm.config import VMConfig
    from sandbox_kernel.vm.machine import SandboxVM

__all__ = ["SandboxVM", "VMConfig"]


def __getattr__(name: str) -> Any:
    # Lazy, so that the kernel's early snapshot restore imports nothing heavy.
    if name == "SandboxVM":
        from sandbox_kernel.vm.machine import SandboxVM

        return SandboxVM
    if name == "VMConfig":
        from sandbox_kernel.vm.config import VMConfig

        return VMConfig
    raise AttributeError(name)
