"""The kernel's VM settings, as traitlets read from config files and the command line
(``c.SandboxKernel.memory_mb = 2048``), made into the VM manager's ``VMConfig``. The app reads
them too, to start the VM early with the settings the kernel will ask for."""

from pathlib import Path
from typing import Any, cast

from traitlets import Bool, Enum, Float, Int, List, Unicode, Union
from traitlets.config import Configurable

from sandbox_kernel.kernel.cell_limits import CellLimits
from sandbox_kernel.share.plan import SharePlan, host_folder
from sandbox_kernel.share.policy import DEFAULT_EXCLUDES, decide
from sandbox_kernel.share.settings import MIB, ShareSettings
from sandbox_kernel.share.wheelhouse import WheelhousePlan, wheelhouse_plan
from sandbox_kernel.vm.config import Accel, VMConfig

SECTION = "SandboxKernel"  # what users write in their config: the kernel's class name
# The kernel's own settings file, looked for in Jupyter's config folders (~/.jupyter first).
CONFIG_FILE = "sandbox_kernel_config"


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

    shared_folder = Union(
        [Bool(), Unicode()], default_value=True,
        help="The host folder the cells see as their working folder: True for the folder the "
             "kernel starts in (the notebook's), a path, or False for none. Never your home "
             "folder, a folder that holds it, or /.").tag(config=True)
    writable = List(Unicode(), help="Subfolders of the shared folder whose files the VM "
                                    "writes to the host (created if missing)").tag(config=True)
    writable_quota_mb = Int(ShareSettings.write_quota_bytes // MIB,
                            help="How much the writable subfolders may grow").tag(config=True)
    share_exclude = List(Unicode(), default_value=list(DEFAULT_EXCLUDES),
                         help="Names (glob patterns) the VM never sees").tag(config=True)
    share_max_file_mb = Int(ShareSettings.max_file_bytes // MIB,
                            help="The largest file the VM may open").tag(config=True)
    share_max_read_mb = Int(ShareSettings.max_read_bytes // MIB,
                            help="How much the VM may read in all").tag(config=True)
    share_max_files = Int(ShareSettings.max_files,
                          help="Files and folders the VM may hold at once").tag(config=True)
    wheelhouse = Unicode(
        "", help="A host folder of wheels, read-only in the VM at /opt/wheelhouse: %pip "
                 "install, !pip install and python -m pip install take packages from it, "
                 "with no network. Empty for none.").tag(config=True)

    tmp_size_mb = Int(256, help="Size of /tmp in the VM (RAM-backed)").tag(config=True)
    home_size_mb = Int(256, help="Size of the user's home in the VM (RAM-backed)").tag(
        config=True)
    worker_memory_mb = Int(VMConfig.worker_memory_mb,
                           help="Memory for the cell's processes together (0: all the VM's "
                                "but a quarter, or 160 MB, whichever is less)").tag(config=True)
    worker_processes = Int(VMConfig.worker_processes,
                           help="How many processes the cell's code may run at once").tag(
                               config=True)
    fresh_python = Bool(VMConfig.fresh_python,
                        help="When no spare snapshot was ready, run cells in a freshly started "
                             "Python (its own hash seed and address layout) rather than the "
                             "shared snapshot's; off starts faster").tag(config=True)
    spare_snapshots = Bool(None, allow_none=True,
                           help="Start from a snapshot no other kernel has used, when one is "
                                "ready, so that each kernel's Python has a hash seed and "
                                "address layout of its own; the kernel that takes it makes the "
                                "next in the background (default: "
                                "SANDBOX_KERNEL_SPARE_SNAPSHOTS, or on)").tag(config=True)
    cell_timeout_s = Float(0.0, help="Wall-clock seconds a cell may run before it is "
                                     "interrupted (and its Python ended if it does not stop); "
                                     "0 for no limit").tag(config=True)
    max_output_mb = Float(64.0, help="Output one cell may show, in MB; 0 for no limit").tag(
        config=True)

    @classmethod
    def section_names(cls) -> list[str]:
        names = super().section_names()
        return names if SECTION in names else [*names, SECTION]

    def vm_config(self) -> VMConfig:
        config = VMConfig(image=self.image, memory_mb=self.memory_mb, cpus=self.cpus,
                          tmp_size=f"{self.tmp_size_mb}m", home_size=f"{self.home_size_mb}m",
                          worker_memory_mb=self.worker_memory_mb,
                          worker_processes=self.worker_processes,
                          fresh_python=self.fresh_python)
        if self.accel is not None:
            config.accel = cast(Accel, self.accel)  # the Enum trait has checked it
        if self.snapshots is not None:
            config.snapshots = self.snapshots
        if self.spare_snapshots is not None:
            config.spare_snapshots = self.spare_snapshots
        config.share = self.share_plan()
        config.wheelhouse = self.wheelhouse_plan()
        return config

    def _limits(self) -> dict[str, Any]:
        return {"exclude": tuple(self.share_exclude),
                "max_file_bytes": self.share_max_file_mb * MIB,
                "max_read_bytes": self.share_max_read_mb * MIB, "max_files": self.share_max_files}

    def wheelhouse_plan(self) -> WheelhousePlan | None:
        return wheelhouse_plan(self.wheelhouse, **self._limits())

    def cell_limits(self) -> CellLimits:
        return CellLimits(timeout_s=max(0.0, self.cell_timeout_s),
                          max_output_bytes=max(0, int(self.max_output_mb * MIB)))

    def share_plan(self, start_folder: Path | None = None) -> SharePlan:
        folder = host_folder(self.shared_folder, start_folder)
        if folder is None:
            return SharePlan(None, "sharing is off (c.SandboxKernel.shared_folder = False).")
        decision = decide(folder, Path.home(), tuple(self.share_exclude))
        if not decision.share:
            return SharePlan(None, decision.reason)
        try:
            settings = ShareSettings(
                folder=decision.folder, writable=tuple(self.writable),
                write_quota_bytes=self.writable_quota_mb * MIB, **self._limits())
        except ValueError as exc:  # a writable subfolder outside the folder
            return SharePlan(None, f"{exc} (c.SandboxKernel.writable).")
        return SharePlan(settings)


def described(config: VMConfig, **more: Any) -> str:
    """The settings in force, for the kernel's log."""
    parts = [f"image {config.image}", f"{config.memory_mb} MiB", f"{config.cpus} vCPUs",
             f"accel {config.accel}", f"snapshots {'on' if config.snapshots else 'off'}"]
    return ", ".join([*parts, *(f"{key} {value}" for key, value in more.items())])
