"""Starting kernels and timing what they do, through jupyter_client as a frontend would."""

import contextlib
import os
import queue
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager

SANDBOX = "sandbox-python"
IPYKERNEL = "python3"
TIMEOUT = 180
FIRST_START_TIMEOUT = 600  # a cold boot that takes the snapshot


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def median(values: list[float]) -> float:
    return statistics.median(values)


@contextlib.contextmanager
def kernel(name: str, env: dict[str, str] | None = None, cwd: Path | None = None,
           timeout: float = TIMEOUT) -> Iterator[tuple[KernelManager, BlockingKernelClient]]:
    """A kernel started in ``cwd`` (by default this process's), as Jupyter starts one in
    its notebook's folder."""
    km = KernelManager(kernel_name=name)
    km.start_kernel(env={**os.environ, **(env or {})}, cwd=str(cwd or Path.cwd()))
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=timeout)
        yield km, kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)


def _reply_to(kc: BlockingKernelClient, msg_id: str, timeout: float = TIMEOUT
              ) -> dict[str, Any]:
    while True:
        reply = kc.get_shell_msg(timeout=timeout)
        if reply["parent_header"].get("msg_id") == msg_id:
            return dict(reply["content"])


def execute(kc: BlockingKernelClient, code: str, timeout: float = TIMEOUT) -> dict[str, Any]:
    """Runs ``code`` and waits for its reply; returns the reply's content."""
    return _reply_to(kc, kc.execute(code), timeout)


def _next_iopub(kc: BlockingKernelClient, waiting_for: str) -> dict[str, Any]:
    """The next IOPub message; a timeout says what the bench was waiting for."""
    try:
        return dict(kc.get_iopub_msg(timeout=TIMEOUT))
    except queue.Empty:
        raise TimeoutError(f"no IOPub message in {TIMEOUT} s while waiting for {waiting_for}"
                           ) from None


def drain_iopub(kc: BlockingKernelClient) -> None:
    with contextlib.suppress(Exception):
        while True:
            kc.get_iopub_msg(timeout=0.05)


def time_to_first_result(name: str, env: dict[str, str] | None = None,
                         timeout: float = TIMEOUT) -> float:
    started = time.perf_counter()
    with kernel(name, env, timeout=timeout) as (_, kc):
        reply = execute(kc, "1+1", timeout)
        elapsed = time.perf_counter() - started
        assert reply["status"] == "ok", reply
    return elapsed


def cell_round_trips(kc: BlockingKernelClient, count: int) -> list[float]:
    execute(kc, "pass")
    times = []
    for _ in range(count):
        started = time.perf_counter()
        execute(kc, "1+1")
        times.append(time.perf_counter() - started)
    drain_iopub(kc)
    return times


def stdout_throughput(kc: BlockingKernelClient, megabytes: int) -> float:
    """MB/s of stdout one cell prints, counted as it reaches the frontend."""
    drain_iopub(kc)
    code = ("import sys\nline = 'x' * 1023 + '\\n'\n"
            f"for _ in range({megabytes * 1024}):\n    sys.stdout.write(line)\n")
    started = time.perf_counter()
    msg_id = kc.execute(code)
    received = 0
    while True:
        msg = _next_iopub(kc, "the stdout cell's output and idle status")
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream":
            received += len(msg["content"]["text"])
        elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
    elapsed = time.perf_counter() - started
    _reply_to(kc, msg_id)
    assert received == megabytes * 2**20, f"received {received} bytes"
    return megabytes * 2**20 / 1e6 / elapsed


def _wait_until_running(kc: BlockingKernelClient, msg_id: str) -> None:
    while True:
        try:
            msg = _next_iopub(kc, "a busy cell to start (before an interrupt)")
        except TimeoutError as exc:
            # A request that never starts has been answered without running, if at all:
            # say how (ipykernel aborts requests queued behind an error).
            try:
                status = _reply_to(kc, msg_id, timeout=5).get("status")
            except queue.Empty:
                status = "none"
            raise TimeoutError(f"{exc}; the cell's reply: {status}") from None
        if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "execute_input":
            return


def _wait_until_idle(kc: BlockingKernelClient, msg_id: str) -> None:
    # As a frontend does before its next cell: ipykernel aborts a request that reaches it
    # before it has finished with an error reply.
    while True:
        msg = _next_iopub(kc, "an interrupted cell's idle status")
        if (msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "status"
                and msg["content"]["execution_state"] == "idle"):
            return


def interrupt_latencies(km: KernelManager, kc: BlockingKernelClient, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        msg_id = kc.execute("while True: pass")
        _wait_until_running(kc, msg_id)
        time.sleep(0.3)
        started = time.perf_counter()
        km.interrupt_kernel()
        reply = _reply_to(kc, msg_id)
        times.append(time.perf_counter() - started)
        assert reply.get("ename") == "KeyboardInterrupt", reply
        _wait_until_idle(kc, msg_id)
    drain_iopub(kc)
    return times


def restart_time(km: KernelManager, kc: BlockingKernelClient) -> float:
    started = time.perf_counter()
    km.restart_kernel(now=False)
    kc.wait_for_ready(timeout=TIMEOUT)
    assert execute(kc, "1+1")["status"] == "ok"
    return time.perf_counter() - started


def _memory_kb(pid: int) -> tuple[int, int]:
    rss = pss = 0
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                rss = int(line.split()[1])
            elif line.startswith("Pss:"):
                pss = int(line.split()[1])
    return rss, pss


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


def kernel_memory_mb(km: KernelManager) -> tuple[float, float]:
    """RSS and PSS of the kernel process and everything it started (QEMU), in MB."""
    pid = km.provisioner.process.pid  # type: ignore[union-attr]
    pids = [pid, *children(pid)]
    totals = [_memory_kb(p) for p in pids]
    return sum(t[0] for t in totals) / 1024, sum(t[1] for t in totals) / 1024
