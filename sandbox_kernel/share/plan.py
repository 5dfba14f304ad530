"""What a VM is to be given of the host's files: a folder with its settings, or nothing and
why; and how to tell the user."""

import errno
import os
from dataclasses import dataclass
from pathlib import Path

from sandbox_kernel.share.folder import Folder
from sandbox_kernel.share.settings import MIB, ShareSettings

GUEST_HOME = "/home/user"


@dataclass(frozen=True)
class SharePlan:
    settings: ShareSettings | None  # None: nothing is shared
    reason: str = ""  # why nothing is, for the user

    @property
    def guest_name(self) -> str:
        """The folder's name in the VM, under the guest user's home, as on the host."""
        name = self.settings.folder.name if self.settings else ""
        return name if name not in ("", ".", "..") and len(name.encode()) <= 255 else "work"

    @property
    def guest_path(self) -> str:
        return f"{GUEST_HOME}/{self.guest_name}"

    def describe(self) -> str:
        s = self.settings
        if s is None:
            return f"No folder of the host is visible in this VM: {self.reason}"
        lines = [f"{s.folder} (on the host) is this VM's working folder, {self.guest_path}."]
        lines.append("It is read-only: what cells write there stays in the VM, and is gone "
                     "when the kernel restarts" + (", except in " + ", ".join(
                         f"{w}/" for w in s.writable) + ", whose files are written to the "
                         f"host folder (quota {s.write_quota_bytes // MIB} MB, "
                         "c.SandboxKernel.writable_quota_mb)" if s.writable else "") + ".")
        lines.append("Hidden: " + ", ".join(s.exclude) + " (c.SandboxKernel.share_exclude).")
        lines.append(f"Limits: files up to {s.max_file_bytes // MIB} MB (share_max_file_mb), "
                     f"{s.max_read_bytes // MIB} MB read in all (share_max_read_mb), "
                     f"{s.max_files} files and folders at once (share_max_files).")
        return "\n".join(lines)


def make_writable_folders(settings: ShareSettings) -> None:
    """Creates the writable subfolders the host folder lacks, never through a symlink."""
    folder = Folder(settings.folder, settings.exclude)
    try:
        for path in settings.writable_paths:
            parts = path.split(b"/")
            for depth in range(1, len(parts) + 1):
                try:
                    folder.mkdir(b"/".join(parts[:depth]), 0o755)
                except FileExistsError:
                    pass
                except OSError as exc:
                    if exc.errno != errno.EEXIST:
                        raise
    finally:
        folder.close()


def host_folder(setting: bool | str, start_folder: Path | None = None) -> Path | None:
    """The folder a setting names: True for the kernel's start folder, False for none."""
    if setting is False:
        return None
    if setting is True:
        return start_folder or Path(os.getcwd())
    return Path(setting).expanduser()
