"""A VM's private run folder (mode 0700): its sockets, console log, QEMU's output and pid."""

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sandbox_kernel import paths

RUN_DIR_PREFIX = "sandbox-vm-"


@dataclass(frozen=True)
class RunDir:
    path: Path

    @property
    def cmd_socket(self) -> Path:
        return self.path / "cmd.sock"

    @property
    def evt_socket(self) -> Path:
        return self.path / "evt.sock"

    @property
    def share_socket(self) -> Path:
        return self.path / "share.sock"

    @property
    def wheelhouse_socket(self) -> Path:
        return self.path / "wheelhouse.sock"

    @property
    def qmp_socket(self) -> Path:
        return self.path / "qmp.sock"

    @property
    def console_log(self) -> Path:
        return self.path / "console.log"

    @property
    def qemu_log(self) -> Path:
        return self.path / "qemu.log"

    @property
    def pid_file(self) -> Path:
        return self.path / "qemu.pid"

    @staticmethod
    def create() -> "RunDir":
        sweep_stale_run_dirs()
        root = paths.run_root()
        root.mkdir(parents=True, exist_ok=True)
        return RunDir(Path(tempfile.mkdtemp(prefix=RUN_DIR_PREFIX, dir=root)))


def sweep_stale_run_dirs(min_age_s: float = 600.0) -> None:
    """Removes run folders whose QEMU is gone: their kernel was killed (SIGKILL) before it
    could clean up. QEMU itself died with it (PR_SET_PDEATHSIG)."""
    for folder in paths.run_root().glob(f"{RUN_DIR_PREFIX}*"):
        try:
            pid = int((folder / "qemu.pid").read_text())
            gone = not _runs_in(pid, folder)
        except (OSError, ValueError):
            try:
                gone = time.time() - folder.stat().st_mtime > min_age_s
            except OSError:
                continue
        if gone:
            shutil.rmtree(folder, ignore_errors=True)


def _runs_in(pid: int, folder: Path) -> bool:
    """Whether ``pid`` is a live QEMU of ``folder``: not a zombie that nobody reaped (its
    kernel was killed), nor a reused pid that names another command. A command line that
    reads empty is a process in the middle of an exec (setpriv becoming QEMU, as another
    kernel starts its VM): alive."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, IndexError):
        return False
    if state == "Z":
        return False
    return not cmdline or str(folder).encode() in cmdline
