"""The limits a user sets reach the VM and hold there: a cell's time, its output, the worker's
memory and processes, the tmpfs sizes."""

import os
import queue
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox_kernel.kernel.app import CONFIG_FILE
from tests.kernel.kernels import Kernel, run, start_kernel, stdout_of

pytestmark = [pytest.mark.vm, pytest.mark.timeout(400)]

SETTINGS = """
c.SandboxKernel.snapshots = False
c.SandboxKernel.cell_timeout_s = 10
c.SandboxKernel.max_output_mb = 1
c.SandboxKernel.worker_memory_mb = 300
c.SandboxKernel.worker_processes = 64
c.SandboxKernel.tmp_size_mb = 64
c.SandboxKernel.home_size_mb = 32
"""


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    config_dir = tmp_path_factory.mktemp("config")
    (config_dir / f"{CONFIG_FILE}.py").write_text(SETTINGS)
    km, kc = start_kernel(env={**os.environ, "JUPYTER_CONFIG_DIR": str(config_dir)},
                          cwd=str(Path(__file__).parent))
    yield km, kc
    kc.stop_channels()
    km.shutdown_kernel(now=True)


def _notices(msgs: list[dict[str, Any]]) -> list[str]:
    return [m["content"]["text"] for m in msgs if m["msg_type"] == "stream"
            and m["content"]["text"].startswith("sandbox: ")]


def test_the_worker_s_caps_and_the_tmpfs_sizes_are_the_settings(kernel: Kernel) -> None:
    reply, msgs = run(kernel[1], "import os, resource\n"
                                 "cg = '/sys/fs/cgroup/worker/'\n"
                                 "print(int(open(cg + 'memory.max').read()) // 2**20,"
                                 " open(cg + 'pids.max').read().strip(),"
                                 " resource.getrlimit(resource.RLIMIT_NPROC)[0],"
                                 " *(os.statvfs(d).f_blocks * os.statvfs(d).f_frsize // 2**20"
                                 "   for d in ('/tmp', os.path.expanduser('~'))))")
    assert reply["content"]["status"] == "ok", reply["content"]
    assert stdout_of(msgs) == "300 64 64 64 32\n"


def test_a_cell_past_its_time_is_interrupted_with_a_message_naming_the_setting(
        kernel: Kernel) -> None:
    reply, msgs = run(kernel[1], "x = 1\nimport time\ntime.sleep(30)")
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    [notice] = _notices(msgs)
    assert "c.SandboxKernel.cell_timeout_s = 10" in notice
    reply, msgs = run(kernel[1], "print(x)")
    assert stdout_of(msgs) == "1\n"  # the worker lived on


def test_a_cell_that_ignores_the_interrupt_has_its_worker_ended(kernel: Kernel) -> None:
    reply, msgs = run(kernel[1], "import signal, time\n"
                                 "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                                 "time.sleep(60)")
    assert reply["content"]["ename"] == "WorkerDied", reply["content"]
    notices = _notices(msgs)
    assert len(notices) == 2 and "ended" in notices[1], notices
    assert all("cell_timeout_s = 10" in n for n in notices)
    reply, msgs = run(kernel[1], "print('next')")
    assert stdout_of(msgs) == "next\n", (reply["content"], msgs)


def test_output_past_the_cap_is_cut_with_a_message_naming_the_setting(kernel: Kernel) -> None:
    reply, msgs = run(kernel[1], "import sys\nsys.stdout.write('x' * 3_000_000)")
    assert reply["content"]["status"] == "ok", reply["content"]
    shown = sum(len(m["content"]["text"]) for m in msgs if m["msg_type"] == "stream"
                and not m["content"]["text"].startswith("sandbox: "))
    assert 2**20 // 2 <= shown <= 2**20
    [notice] = _notices(msgs)
    assert "c.SandboxKernel.max_output_mb = 1" in notice


def _iopub_under(kc: Any, msg_id: str, seconds: float) -> list[dict[str, Any]]:
    """What IOPub carries under request ``msg_id`` for ``seconds``."""
    msgs, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            msg = kc.get_iopub_msg(timeout=0.2)
        except queue.Empty:
            continue
        if msg["parent_header"].get("msg_id") == msg_id:
            msgs.append(msg)
    return msgs


def test_a_thread_printing_after_its_cell_ended_is_held_to_the_cell_s_cap(
        kernel: Kernel) -> None:
    kc = kernel[1]
    reply, msgs = run(kc, "import sys, threading\nstop = threading.Event()\n"
                          "threading.Thread(target=lambda: [sys.stdout.write('x' * 65536) for _"
                          " in iter(stop.is_set, True)], daemon=True).start()")
    assert reply["content"]["status"] == "ok", reply["content"]
    msgs += _iopub_under(kc, reply["parent_header"]["msg_id"], 5.0)  # it goes on meanwhile
    shown = sum(len(m["content"]["text"]) for m in msgs if m["msg_type"] == "stream"
                and not m["content"]["text"].startswith("sandbox: "))
    assert shown <= 2**20
    [notice] = _notices(msgs)  # when the cap is passed: during the cell, or after it
    assert "c.SandboxKernel.max_output_mb = 1" in notice
    # The kernel still runs cells, and interrupts them, while the thread prints.
    msg_id = kc.execute("import time\ntime.sleep(60)")
    time.sleep(2)
    kc.session.send(kc.control_channel.socket, kc.session.msg("interrupt_request", {}))
    interrupted = time.monotonic()
    reply = kc.get_shell_msg(timeout=20)
    assert reply["parent_header"]["msg_id"] == msg_id
    assert reply["content"]["ename"] == "KeyboardInterrupt", reply["content"]
    assert time.monotonic() - interrupted < 6  # the interrupt, not the cell's time limit
    run(kc, "stop.set()")
    reply, msgs = run(kc, "print('next')")
    assert stdout_of(msgs) == "next\n"
