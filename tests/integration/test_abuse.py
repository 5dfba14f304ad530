"""Cells that abuse the worker: what they do must end in a reply, and the next cell runs."""

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from sandbox_kernel import protocol as p
from sandbox_kernel.vm import SandboxVM
from tests.integration.vmtools import run

pytestmark = [pytest.mark.vm, pytest.mark.timeout(180), pytest.mark.asyncio(loop_scope="module")]


@pytest.mark.parametrize("child", ["['sleep', '30']", "['sleep', 'infinity']"])
async def test_a_worker_that_dies_while_its_children_hold_its_pipes_is_seen_at_once(
        vm: SandboxVM, child: str) -> None:
    started = time.monotonic()
    out = await run(vm, f"import os, subprocess\nsubprocess.Popen({child})\n"
                        "print('bye', flush=True)\nos._exit(3)")
    assert time.monotonic() - started < 10
    assert out.complete.ename == "WorkerDied" and "exit code 3" in out.complete.evalue
    assert out.stdout == "bye\n"
    after = await run(vm, "import subprocess\n"
                          "print(subprocess.run(['pgrep', '-c', 'sleep'], capture_output=True,"
                          " text=True).stdout.strip())")
    assert after.stdout == "0\n"  # what the dead worker started went with it


@pytest.mark.parametrize("size_mb", [20, 80, 150])
async def test_a_result_too_large_to_send_is_a_note_and_the_variables_stay(
        vm: SandboxVM, size_mb: int) -> None:
    await run(vm, "kept = 'still here'")
    out = await run(vm, f"'x' * {size_mb} * 2**20")
    assert out.complete.status == "ok", out.complete
    assert "did not send a execute_result" in out.stderr and "16 MB" in out.stderr
    assert (await run(vm, "print(kept)")).stdout == "still here\n"


async def test_the_cell_s_user_has_no_way_into_the_guest_kernel(vm: SandboxVM) -> None:
    out = await run(vm, "import ctypes, os\n"
                        "print(sorted(int(d) for d in os.listdir('/proc') if d.isdigit())[0] > 1)\n"
                        "for knob in ('kernel/kptr_restrict', 'kernel/dmesg_restrict',\n"
                        "             'kernel/yama/ptrace_scope', 'user/max_user_namespaces'):\n"
                        "    print(knob, open('/proc/sys/' + knob).read().strip())\n"
                        "libc = ctypes.CDLL(None, use_errno=True)\n"
                        "print('unshare', libc.unshare(0x10000000), ctypes.get_errno() != 0)\n"
                        "print(open('/proc/kallsyms').readline().split()[0].strip('0') == '')")
    assert out.stdout.splitlines() == [
        "True", "kernel/kptr_restrict 2", "kernel/dmesg_restrict 1",
        "kernel/yama/ptrace_scope 2", "user/max_user_namespaces 0", "unshare -1 True", "True"]
    log = await run(vm, "import ctypes\nbuf = ctypes.create_string_buffer(4096)\n"
                        "print(ctypes.CDLL(None, use_errno=True).klogctl(3, buf, 4096),"
                        " ctypes.get_errno())")  # the kernel log, as dmesg reads it
    assert log.stdout == "-1 1\n"  # EPERM


_FORK_BOMB = """
import os
while True:
    try:
        os.fork()
        hoard = bytearray(8 * 2**20)
    except OSError:
        pass
"""


async def test_a_fork_bomb_that_eats_memory_leaves_the_agent_answering_within_a_second(
        vm: SandboxVM) -> None:
    # It used to freeze the guest for over a minute, until the out-of-memory killer came.
    cell = asyncio.ensure_future(run(vm, _FORK_BOMB))
    await asyncio.sleep(1.0)
    waits = []
    for _ in range(40):
        asked = time.monotonic()
        assert isinstance(await asyncio.wait_for(vm.request(p.Ping), 30), p.Pong)
        waits.append(time.monotonic() - asked)
        await asyncio.sleep(0.25)
    vm.interrupt()
    out = await asyncio.wait_for(cell, 120)
    assert out.complete.status == "error", out.complete
    assert max(waits) < 1.0, sorted(waits)[-5:]
    after = await run(vm, "print('next')")
    assert after.stdout == "next\n"


async def test_the_worker_s_processes_share_caps_on_memory_and_processes(vm: SandboxVM) -> None:
    out = await run(vm, "import os\nprint(open('/proc/self/cgroup').read().strip())\n"
                        "root = '/sys/fs/cgroup/worker/'\n"
                        "print(open(root + 'pids.max').read().strip(),"
                        " int(open(root + 'memory.max').read()) < os.sysconf('SC_PHYS_PAGES')"
                        " * os.sysconf('SC_PAGE_SIZE'))")
    assert out.stdout == "0::/worker\n1024 True\n"


async def test_comm_messages_a_running_cell_does_not_read_leave_the_agent_answering(
        vm: SandboxVM) -> None:
    # The agent wrote requests into the worker's pipe itself, and a big one blocked it there
    # until the cell ended: no pong, no interrupt, no end of the worker.
    channel = vm.channel
    assert channel is not None
    events = vm.execute("import time\nprint('started', flush=True)\ntime.sleep(120)")
    assert isinstance(await anext(events), p.OutputChunk)

    def comm(size_mb: int) -> "asyncio.Future[p.Event]":
        return asyncio.ensure_future(channel.request(p.CommMsg(
            id=channel.next_id(), comm_id="no-such-comm", data={"v": "x" * size_mb * 2**20})))

    taken = [comm(4), comm(12), comm(12)]  # the pipe holds 1 MB; the agent 32 more
    assert isinstance(await asyncio.wait_for(vm.request(p.Ping), 10), p.Pong)
    refused = await asyncio.wait_for(comm(12), 60)
    assert isinstance(refused, p.AgentError) and refused.error_type == "WorkerBusy", refused
    assert "Interrupt the running cell" in refused.message
    vm.interrupt()
    reply = await asyncio.wait_for(_last(events), 30)
    assert isinstance(reply, p.ExecuteReply) and reply.ename == "KeyboardInterrupt", reply
    answers = await asyncio.wait_for(asyncio.gather(*taken), 60)
    assert [type(answer) for answer in answers] == [p.Ack] * 3, answers
    assert (await run(vm, "print('next')")).stdout == "next\n"


async def _last(events: AsyncIterator[p.Event]) -> p.Event:
    return [event async for event in events][-1]
