"""``python -m bench.stdout_cpu [MB]``: where the CPU time of one cell's stdout goes, per
thread of the kernel process, QEMU and this client, in ms per MB, for both kernels."""

import os
import sys
import time
from pathlib import Path

from bench import kernels as k

_TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def _thread_cpu(pid: int, label: str) -> dict[str, float]:
    """CPU seconds so far of each thread of ``pid``, by "label/thread name/tid"."""
    found = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue  # it ended meanwhile
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        found[f"{label}/{name}/{task.name}"] = (int(fields[11]) + int(fields[12])) * _TICK_S
    return found


def profile(name: str, megabytes: int) -> None:
    with k.kernel(name) as (km, kc):
        k.execute(kc, "1+1")
        kernel_pid = km.provisioner.process.pid  # type: ignore[union-attr]
        pids = {kernel_pid: "kernel", os.getpid(): "client"}
        pids.update({child: "qemu" for child in k.children(kernel_pid)})

        def sample() -> dict[str, float]:
            return {key: v for pid, label in pids.items()
                    for key, v in _thread_cpu(pid, label).items()}

        before, started = sample(), time.perf_counter()
        rate = k.stdout_throughput(kc, megabytes)
        after, wall = sample(), time.perf_counter() - started
    mb = megabytes * 2**20 / 1e6
    print(f"{name}: {rate:.0f} MB/s, {wall:.2f} s")
    spent = {key: after[key] - before.get(key, 0.0) for key in after}
    for key, seconds in sorted(spent.items(), key=lambda kv: -kv[1]):
        if seconds > 0:
            print(f"  {key:40s} {1e3 * seconds / mb:6.2f} ms/MB")
    print(f"  {'total':40s} {1e3 * sum(spent.values()) / mb:6.2f} ms/MB")


def main() -> None:
    megabytes = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    for name in (k.SANDBOX, k.IPYKERNEL):
        profile(name, megabytes)


if __name__ == "__main__":
    main()
