"""What VM tests may leave behind: QEMU processes and VM run folders. Only this suite's count:
each suite has a run folder of its own (see tests/conftest.py), which every QEMU it starts
names on its command line, so a notebook someone has open, or another checkout's suite,
is never mistaken for a leak."""

from pathlib import Path

from sandbox_kernel import paths
from sandbox_kernel.vm.rundir import RUN_DIR_PREFIX


def qemu_processes(run_root: Path | None = None) -> set[str]:
    """"pid command line" of every QEMU whose run folder is under ``run_root`` (this
    process's, by default). Read from /proc, not through pgrep: a check made right after a
    cancellation must not give a leaking teardown the few ms a subprocess takes."""
    mark = str(run_root or paths.run_root()) + "/"
    found = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if (proc / "comm").read_text().startswith("qemu-system"):
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                if mark in cmdline:
                    found.add(f"{proc.name} {cmdline.strip()}")
        except OSError:
            pass  # it exited meanwhile
    return found


def run_dirs(run_root: Path | None = None) -> set[str]:
    return {p.name for p in (run_root or paths.run_root()).glob(f"{RUN_DIR_PREFIX}*")}
