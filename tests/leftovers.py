"""What VM tests may leave behind: QEMU processes and VM run directories."""

import tempfile
from pathlib import Path

from sandbox_kernel.vm.rundir import RUN_DIR_PREFIX


def qemu_processes() -> set[str]:
    """"pid command line" of every QEMU. Read from /proc, not through pgrep: a check made right
    after a cancellation must not give a leaking teardown the few ms a subprocess takes."""
    found = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if (proc / "comm").read_text().startswith("qemu-system"):
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                found.add(f"{proc.name} {cmdline.strip()}")
        except OSError:
            pass  # it exited meanwhile
    return found


def run_dirs() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob(f"{RUN_DIR_PREFIX}*")}
