"""``python -m bench.guest_profile``: where a sandbox VM's own time goes, measured inside the
guest through the VM API (no Jupyter on top): a trivial cell's round trip against IPython's
``run_cell`` within it, a profile of ``run_cell``, and the guest CPU time per MB of stdout of
each of the worker's threads (from ``/proc/*/task/*/schedstat``, in nanoseconds). The agent's
threads do not show: /proc hides root's processes from the cell's user."""

import asyncio
import json
import statistics
import time

from sandbox_kernel import protocol as p
from sandbox_kernel.vm import SandboxVM, running_vm

_CELLS = 200
_MEGABYTES = 50

# Runs in the worker, which sees its own processes' schedstat only. The agent is PID 1.
_THREAD_CPU = """
import os
def _thread_cpu_ns():
    found = {}
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            tids = os.listdir(f'/proc/{pid}/task')
        except OSError:
            continue
        for tid in tids:
            try:
                comm = open(f'/proc/{pid}/task/{tid}/comm').read().strip()
                ns = int(open(f'/proc/{pid}/task/{tid}/schedstat').read().split()[0])
            except OSError:
                continue
            who = ('agent' if pid == '1' else 'worker' if int(pid) == os.getpid() else comm)
            found[f'{who}/{tid}'] = ns
    return found
"""

_STDOUT_LOOP = """
import json, sys, time
_before = _thread_cpu_ns()
_line = 'x' * 1023 + '\\n'
for _ in range({lines}):
    sys.stdout.write(_line)
sys.stdout.flush()
time.sleep(0.3)  # the agent forwards the tail meanwhile
_after = _thread_cpu_ns()
print(json.dumps({{k: v - _before.get(k, 0) for k, v in _after.items()}}), file=sys.stderr)
"""



def _stdout_cell(lines: int) -> str:
    return _THREAD_CPU + _STDOUT_LOOP.format(lines=lines)


_PROFILE_CELL = """
import cProfile, io, pstats, sys
_ip = get_ipython()
for _ in range(20):
    _ip.run_cell('1+1')
_profile = cProfile.Profile()
_profile.enable()
for _ in range({cells}):
    _ip.run_cell('1+1')
_profile.disable()
_out = io.StringIO()
pstats.Stats(_profile, stream=_out).sort_stats('tottime').print_stats(20)
print(_out.getvalue(), file=sys.stderr)
"""


async def _collect(vm: SandboxVM, code: str) -> tuple[int, str, p.ExecuteReply]:
    """Bytes of stdout, the stderr text and the completion of one cell."""
    stdout, stderr, done = 0, [], None
    async for event in vm.execute(code):
        if isinstance(event, p.OutputChunk):
            if event.name == "stdout":
                stdout += len(event.text)
            else:
                stderr.append(event.text)
        elif isinstance(event, p.ExecuteReply):
            done = event
    assert done is not None and done.status == "ok", done
    return stdout, "".join(stderr), done


_RUN_CELL_TIMES = """
import statistics, sys, time
_ip, _times = get_ipython(), []
for _ in range({cells}):
    _started = time.perf_counter()
    _ip.run_cell('1+1')
    _times.append(time.perf_counter() - _started)
print(statistics.median(_times), file=sys.stderr)
"""


async def trivial_cells(vm: SandboxVM) -> None:
    totals = []
    for _ in range(_CELLS):
        started = time.perf_counter()
        await _collect(vm, "1+1")
        totals.append(time.perf_counter() - started)
    _, inside, _ = await _collect(vm, _RUN_CELL_TIMES.format(cells=_CELLS))
    total, run_cell = statistics.median(totals) * 1e3, float(inside) * 1e3
    print(f"trivial cell through the VM API, p50 of {_CELLS}: {total:.2f} ms, of which "
          f"IPython's run_cell {run_cell:.2f} ms and the channel, agent and worker "
          f"{total - run_cell:.2f} ms")


async def run_cell_profile(vm: SandboxVM) -> None:
    _, profile, _ = await _collect(vm, _PROFILE_CELL.format(cells=_CELLS))
    print(f"\nrun_cell('1+1') x {_CELLS} under cProfile, in the guest (the profiler's own "
          "overhead inflates calls):")
    print(profile.strip())


async def stdout_split(vm: SandboxVM) -> None:
    size, report, _ = await _collect(vm, _stdout_cell(_MEGABYTES * 1024))
    megabytes = size / 1e6
    spent = {key: ns / 1e6 / megabytes for key, ns in json.loads(report).items()}
    print(f"\n{_MEGABYTES} MB of stdout from one cell: guest CPU per MB, by guest thread:")
    for key, ms in sorted(spent.items(), key=lambda kv: -kv[1]):
        if ms >= 0.05:
            print(f"  {key:32s} {ms:6.2f} ms/MB")
    print(f"  {'total':32s} {sum(spent.values()):6.2f} ms/MB")


async def main() -> None:
    async with running_vm() as vm:
        print(f"VM started from {vm.started_from} ({vm.accel})")
        await _collect(vm, "pass")
        await trivial_cells(vm)
        await run_cell_profile(vm)
        await _collect(vm, _stdout_cell(1024))  # the first output is slower
        await stdout_split(vm)


if __name__ == "__main__":
    asyncio.run(main())
