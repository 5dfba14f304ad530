"""The VM manager: QEMU microvm lifecycle, accelerator choice and snapshots.

Layers, each importing only those below it: ``config``, ``rundir``, ``qemu`` (the command
line), ``process``, ``verdicts`` and ``timezone``; ``snapshot_store``; ``migration`` (QMP) and
``restore``; ``machine`` (``SandboxVM``); ``launch`` (accelerator probe, ``start_vm``); ``early``
(a start in a thread of its own while the kernel starts up)."""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandbox_kernel.vm.config import VMConfig
    from sandbox_kernel.vm.launch import running_vm, start_vm
    from sandbox_kernel.vm.machine import SandboxVM

__all__ = ["SandboxVM", "VMConfig", "running_vm", "start_vm"]


def __getattr__(name: str) -> Any:
    # Lazy, so that the kernel's early snapshot restore imports nothing heavy.
    if name == "VMConfig":
        from sandbox_kernel.vm.config import VMConfig

        return VMConfig
    if name == "SandboxVM":
        from sandbox_kernel.vm.machine import SandboxVM

        return SandboxVM
    if name in ("running_vm", "start_vm"):
        from sandbox_kernel.vm import launch

        return getattr(launch, name)
    raise AttributeError(name)
