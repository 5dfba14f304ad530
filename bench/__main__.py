"""``python -m bench [--quick]``: the sandbox kernel next to stock ipykernel; writes
bench/results.json and prints a table of figures and sandbox/ipykernel ratios."""

import argparse
import asyncio
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from bench import debugger, files, scientific, spares
from bench import kernels as k
from bench.density import max_concurrent

RESULTS = Path(__file__).parent / "results.json"
# Trivial cells go in batches, one kernel's after the other's, for the same reason as
# ``_alternating``: TCG slows down far more than ipykernel in the host's slow spells.
CELL_BATCH = 20


def _host() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return f"{cpu}, {os.cpu_count()} cores, Linux {platform.release()}"


def _accel() -> str:
    from sandbox_kernel.vm.config import VMConfig
    from sandbox_kernel.vm.launch import choose_accelerator

    return asyncio.run(choose_accelerator(VMConfig())).accel


def _alternating(measure_a: Any, measure_b: Any, runs: int) -> tuple[float, float]:
    """Medians of ``runs`` measurements of each, taken in turn, so that a host that speeds up
    or slows down during the run moves both alike."""
    a: list[float] = []
    b: list[float] = []
    for _ in range(runs):
        a.append(measure_a())
        b.append(measure_b())
    return k.median(a), k.median(b)


def run(quick: bool) -> dict[str, Any]:
    starts = 3 if quick else 7
    restarts = 3 if quick else 5
    cells = 200
    megabytes = 10 if quick else 50
    interrupts = 10
    density = 10 if quick else 30
    r: dict[str, Any] = {"quick": quick, "accel": _accel(), "host": _host(),
                         "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}

    # Spare snapshots off but for their own rows: no boot of a spare beside the other measures.
    os.environ["SANDBOX_KERNEL_SPARE_SNAPSHOTS"] = "0"
    print("start times ...", flush=True)
    # Makes sure a snapshot exists.
    k.time_to_first_result(k.SANDBOX, timeout=k.FIRST_START_TIMEOUT)
    r["ipykernel_start_s"], r["sandbox_snapshot_start_s"] = _alternating(
        lambda: k.time_to_first_result(k.IPYKERNEL), lambda: k.time_to_first_result(k.SANDBOX),
        starts)
    r["sandbox_cold_start_s"] = k.median([
        k.time_to_first_result(k.SANDBOX, {"SANDBOX_KERNEL_SNAPSHOTS": "0"})
        for _ in range(3 if quick else 5)])
    print("starts from spare snapshots, each made by the kernel before ...", flush=True)
    started_in, made_in = spares.starts(starts)
    r["sandbox_spare_start_s"], r["sandbox_spare_made_s"] = k.median(started_in), k.median(
        made_in)

    print("the notebook's folder: a file read, a start in a big folder ...", flush=True)
    with files.folder_with_data(100) as folder:
        r["ipykernel_file_read_MBps"], r["sandbox_file_read_MBps"] = _alternating(
            lambda: files.file_read_MBps(k.IPYKERNEL, folder),
            lambda: files.file_read_MBps(k.SANDBOX, folder), 3)
    empty = files.empty_folder()
    try:
        with files.big_folder() as big:
            r["sandbox_snapshot_start_emptydir_s"], r["sandbox_snapshot_start_bigdir_s"] = (
                _alternating(lambda: files.start_in(empty), lambda: files.start_in(big),
                             starts))
    finally:
        files.remove(empty)

    if scientific.installed():
        print("the scientific image: start, first import of pandas ...", flush=True)
        # Makes sure its snapshot exists: a cold boot that preloads pandas, slow under TCG.
        k.time_to_first_result(scientific.SCIENTIFIC, timeout=k.FIRST_START_TIMEOUT)
        r["sandbox_scientific_snapshot_start_s"] = k.median([
            k.time_to_first_result(scientific.SCIENTIFIC) for _ in range(starts)])
        r["sandbox_import_pandas_ms"] = k.median([
            scientific.first_import_ms("pandas") for _ in range(3)])
    else:
        print(f"no {scientific.SCIENTIFIC} kernelspec (make scientific): skipped", flush=True)

    print("cells, in batches taken in turn ...", flush=True)
    trips: dict[str, list[float]] = {"ipykernel": [], "sandbox": []}
    with k.kernel(k.IPYKERNEL) as (_, ipy_kc), k.kernel(k.SANDBOX) as (_, sb_kc):
        for _ in range(cells // CELL_BATCH):
            trips["ipykernel"] += k.cell_round_trips(ipy_kc, CELL_BATCH)
            trips["sandbox"] += k.cell_round_trips(sb_kc, CELL_BATCH)
    for prefix, times in trips.items():
        r[f"{prefix}_cell_p50_ms"] = k.percentile(times, 0.5) * 1e3
        r[f"{prefix}_cell_p90_ms"] = k.percentile(times, 0.9) * 1e3

    for name, prefix in ((k.IPYKERNEL, "ipykernel"), (k.SANDBOX, "sandbox")):
        print(f"{prefix}: stdout, interrupt, memory ...", flush=True)
        with k.kernel(name) as (km, kc):
            r[f"{prefix}_stdout_MBps"] = k.stdout_throughput(kc, megabytes)
            r[f"{prefix}_interrupt_p50_ms"] = k.median(
                k.interrupt_latencies(km, kc, interrupts)) * 1e3
            time.sleep(1.0)  # idle
            rss, pss = k.kernel_memory_mb(km)
            r[f"{prefix}_idle_rss_MB"], r[f"{prefix}_idle_pss_MB"] = rss, pss

    print("the debugger: a session's start, cells while it is on ...", flush=True)
    r["ipykernel_debug_session_start_s"], r["sandbox_debug_session_start_s"] = _alternating(
        lambda: debugger.session_start_s(k.IPYKERNEL),
        lambda: debugger.session_start_s(k.SANDBOX), 3)
    for name, prefix in ((k.IPYKERNEL, "ipykernel"), (k.SANDBOX, "sandbox")):
        r[f"{prefix}_cell_debugging_p50_ms"] = k.percentile(
            debugger.cells_while_debugging(name, 100), 0.5) * 1e3

    print("restarts ...", flush=True)
    with k.kernel(k.IPYKERNEL) as (ipy_km, ipy_kc), k.kernel(k.SANDBOX) as (sb_km, sb_kc):
        r["ipykernel_restart_s"], r["sandbox_restart_s"] = _alternating(
            lambda: k.restart_time(ipy_km, ipy_kc), lambda: k.restart_time(sb_km, sb_kc),
            restarts)

    print(f"density: {density} sandbox kernels at once ...", flush=True)
    answered, seconds = asyncio.run(max_concurrent(density))
    r["sandbox_max_concurrent"] = answered
    r["sandbox_density_tried"] = density
    r["sandbox_density_seconds"] = seconds
    return r


ROWS = [
    ("start to first result", "s", "ipykernel_start_s", "sandbox_snapshot_start_s"),
    ("  cold start (no snapshot)", "s", "ipykernel_start_s", "sandbox_cold_start_s"),
    ("  from a spare snapshot (its own hash seed, layout)", "s", "ipykernel_start_s",
     "sandbox_spare_start_s"),
    ("trivial cell p50", "ms", "ipykernel_cell_p50_ms", "sandbox_cell_p50_ms"),
    ("trivial cell p90", "ms", "ipykernel_cell_p90_ms", "sandbox_cell_p90_ms"),
    ("stdout throughput", "MB/s", "ipykernel_stdout_MBps", "sandbox_stdout_MBps"),
    ("file read beside the notebook (100 MB)", "MB/s", "ipykernel_file_read_MBps",
     "sandbox_file_read_MBps"),
    ("start: empty folder | 1 GB, 100k files (both sandbox)", "s",
     "sandbox_snapshot_start_emptydir_s",
     "sandbox_snapshot_start_bigdir_s"),
    ("start: default | scientific image (both sandbox)", "s", "sandbox_snapshot_start_s",
     "sandbox_scientific_snapshot_start_s"),
    ("interrupt to reply p50", "ms", "ipykernel_interrupt_p50_ms", "sandbox_interrupt_p50_ms"),
    ("restart to first result", "s", "ipykernel_restart_s", "sandbox_restart_s"),
    ("debug session start (initialize, attach)", "s", "ipykernel_debug_session_start_s",
     "sandbox_debug_session_start_s"),
    ("trivial cell p50, debugger on", "ms", "ipykernel_cell_debugging_p50_ms",
     "sandbox_cell_debugging_p50_ms"),
    ("idle memory RSS", "MB", "ipykernel_idle_rss_MB", "sandbox_idle_rss_MB"),
    ("idle memory PSS", "MB", "ipykernel_idle_pss_MB", "sandbox_idle_pss_MB"),
]


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def table(r: dict[str, Any]) -> str:
    lines = [f"accel: {r['accel']}; host: {r['host']}; {r['when']}"
             f"{' (quick)' if r['quick'] else ''}", "",
             "| measure | unit | ipykernel | sandbox | sandbox / ipykernel |",
             "|---|---|---:|---:|---:|"]
    for label, unit, base, ours in ROWS:
        a, b = r.get(base), r.get(ours)
        ratio = f"{b / a:.2f}x" if a and b is not None else "-"
        lines.append(f"| {label} | {unit} | {_figure(a)} | {_figure(b)} | {ratio} |")
    if "sandbox_import_pandas_ms" in r:
        lines.append(f"| first `import pandas` (scientific, preloaded) | ms | - | "
                     f"{r['sandbox_import_pandas_ms']:.3g} | - |")
    if "sandbox_spare_made_s" in r:
        lines.append(f"| a kernel makes the next one's spare, after its first result | s | - | "
                     f"{r['sandbox_spare_made_s']:.3g} | - |")
    lines.append(f"| kernels answering at once | count | - | {r['sandbox_max_concurrent']} of "
                 f"{r['sandbox_density_tried']} | - |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer runs, 10 MB, 10 kernels")
    args = parser.parse_args()
    results = run(args.quick)
    RESULTS.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    print()
    print(table(results))
    print(f"\nwritten to {RESULTS}")


if __name__ == "__main__":
    main()
