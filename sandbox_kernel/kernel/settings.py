"""The kernel's VM settings, as traitlets read from config files and the command line
(``c.SandboxKernel.memory_mb = 2048``), made into the VM manager's ``VMConfig``. The app reads
them too, to start the VM early with the settings the kernel will ask for."""

from typing import Any, cast

from traitlets import Bool, Enum, Int, Unicode
from traitlets.config import Configurable

from sandbox_kernel.vm.config import Accel, VMConfig

SECTION = "SandboxKernel"  # what users write in their config: the kernel's class name


class VMSettings(Configurable):
    memory_mb = Int(VMConfig.memory_mb, help="Guest memory in MiB").tag(config=True)
    cpus = Int(VMConfig.cpus, help="Guest vCPUs").tag(config=True)
    accel = Enum(["auto", "kvm", "tcg"], default_value=None, allow_none=True,
                 help="Accelerator; auto probes KVM once and falls back to TCG "
                      "(default: SANDBOX_KERNEL_ACCEL, or auto)").tag(config=True)
    snapshots = Bool(None, allow_none=True,
                     help="Start from a memory snapshot when one matches "
                          "(default: SANDBOX_KERNEL_SNAPSHOTS, or on)").tag(config=True)
    image = Unicode(VMConfig.image, help="Guest image recipe").tag(config=True)

    @classmethod
    def section_names(cls) -> list[str]:
        names = super().section_names()
        return names if SECTION in names else [*names, SECTION]

    def vm_config(self) -> VMConfig:
        config = VMConfig(image=self.image, memory_mb=self.memory_mb, cpus=self.cpus)
        if self.accel is not None:
            config.accel = cast(Accel, self.accel)  # the Enum trait has checked it
        if self.snapshots is not None:
            config.snapshots = self.snapshots
        return config


def described(config: VMConfig, **more: Any) -> str:
    """The settings in force, for the kernel's log."""
    parts = [f"image {config.image}", f"{config.memory_mb} MiB", f"{config.cpus} vCPUs",
             f"accel {config.accel}", f"snapshots {'on' if config.snapshots else 'off'}"]
    return ", ".join([*parts, *(f"{key} {value}" for key, value in more.items())])
