"""Faults from outside the guest's control, and many lives: QEMU killed in the middle of a
cell, and start/stop cycles that leave nothing behind."""

import asyncio
import base64
import os
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable

import pytest

from sandbox_kernel import protocol as p
from sandbox_kernel.errors import SandboxError
from sandbox_kernel.image import initramfs
from sandbox_kernel.vm import VMConfig, start_vm
from tests.integration.vmtools import run
from tests.leftovers import qemu_processes, run_dirs

# CI runs a few; SANDBOX_KERNEL_CYCLES=100 for the long run.
CYCLES = int(os.environ.get("SANDBOX_KERNEL_CYCLES", "15"))
pytestmark = [pytest.mark.vm, pytest.mark.timeout(120 + CYCLES * 10),
              pytest.mark.asyncio(loop_scope="module")]


async def _ends_in_a_clear_error_within_a_second(events: AsyncIterator[p.Event]) -> None:
    started = time.monotonic()
    with pytest.raises(SandboxError) as error:
        async for _ in events:
            pass
    assert time.monotonic() - started < 1.0
    assert "Restart the kernel" in str(error.value) or "closed" in str(error.value)


async def test_qemu_killed_mid_cell_is_a_clear_error_within_a_second() -> None:
    vm = await start_vm(VMConfig(snapshots=True))
    try:
        assert vm.proc is not None and vm.channel is not None
        events = vm.execute("import time\nprint('started', flush=True)\ntime.sleep(60)")
        first = await anext(events)
        assert isinstance(first, p.OutputChunk)
        vm.proc.signal(signal.SIGKILL)
        await _ends_in_a_clear_error_within_a_second(events)
    finally:
        await vm.stop()


# A root-side hook in PID 1, for this test's initramfs only: when the cell creates the file,
# the agent's process ends at once, as a crash would end it. Production images never hold it.
_AGENT_KILLER = """
import os, runpy, signal, threading, time
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGIO})  # as the agent: see its main()
def watch():
    while not os.path.exists('/tmp/end-the-agent'):
        time.sleep(0.02)
    os._exit(9)
threading.Thread(target=watch, daemon=True).start()
runpy.run_path('/opt/sandbox/sandbox_kernel/guest/boot.py', run_name='__main__')
"""
_BOOT_LINE = b"/usr/bin/python3 -I /opt/sandbox/sandbox_kernel/guest/boot.py"


def _init_with_agent_killer(production: Callable[[], bytes]) -> bytes:
    init = production()
    assert init.count(_BOOT_LINE) == 1
    code = base64.b64encode(_AGENT_KILLER.encode()).decode()
    hooked = f"/usr/bin/python3 -I -c \"import base64; exec(base64.b64decode('{code}'))\""
    return init.replace(_BOOT_LINE, hooked.encode())


async def test_the_agent_ending_is_a_clear_error_within_a_second(
        monkeypatch: pytest.MonkeyPatch) -> None:
    production = initramfs._init_script
    monkeypatch.setattr(initramfs, "_init_script", lambda: _init_with_agent_killer(production))
    vm = await start_vm(VMConfig(snapshots=False, boot_timeout_s=90))
    try:
        # Printed first, so that the agent has passed it on before it ends: the clock runs
        # from its arrival, which is before the agent's end.
        events = vm.execute("import time\nprint('started', flush=True)\ntime.sleep(0.1)\n"
                            "open('/tmp/end-the-agent', 'w').close()\ntime.sleep(60)")
        first = await anext(events)
        assert isinstance(first, p.OutputChunk)
        await _ends_in_a_clear_error_within_a_second(events)
    finally:
        await vm.stop()
    assert vm.proc is not None and vm.proc.returncode is not None


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_start_stop_cycles_leave_nothing_behind() -> None:
    config = VMConfig(snapshots=True)
    await (await start_vm(config)).stop()  # the snapshot exists from here on
    fds, threads = _open_fds(), threading.active_count()
    for cycle in range(CYCLES):
        vm = await start_vm(config)
        assert vm.channel is not None
        reply = await vm.request(p.Ping)
        assert isinstance(reply, p.Pong), (cycle, reply)
        await vm.stop()
    await asyncio.sleep(0.5)  # threads that finish after stop (the share's, say)
    assert qemu_processes() == set() and run_dirs() == set()
    assert _open_fds() <= fds, sorted(os.listdir("/proc/self/fd"))
    assert threading.active_count() <= threads


async def test_requests_queued_behind_a_dying_cell_each_get_an_answer() -> None:
    # A widget's comm message sent while its cell is running waits in the worker's pipe; when
    # the worker dies, an execute's reply would not end it, and the host would wait for ever.
    vm = await start_vm(VMConfig(snapshots=True))
    try:
        channel = vm.channel
        assert channel is not None
        events = vm.execute("import os, time\nprint('started', flush=True)\ntime.sleep(2)\n"
                            "os._exit(3)")
        assert isinstance(await anext(events), p.OutputChunk)
        comm = p.CommMsg(id=channel.next_id(), comm_id="no-such-comm", data={"value": 1})
        complete = p.Complete(id=channel.next_id(), code="impo", cursor_pos=4)
        answers = await asyncio.wait_for(asyncio.gather(
            channel.request(comm), channel.request(complete)), 30)
        assert [type(answer) for answer in answers] == [p.AgentError, p.AgentError]
        assert all(answer.error_type == "WorkerDied" for answer in answers)  # type: ignore[union-attr]
        reply = [event async for event in events][-1]
        assert isinstance(reply, p.ExecuteReply) and reply.ename == "WorkerDied"
    finally:
        await vm.stop()


async def test_a_worker_started_after_a_crash_imports_nothing_beside_the_next_cell() -> None:
    # The preload is for the worker that replaces a restored snapshot's: one started after a
    # crash imported numpy and matplotlib in the background, slowing the next cells.
    vm = await start_vm(VMConfig(snapshots=True, fresh_python=False))
    try:
        assert vm.started_from == "snapshot"
        crashed = await run(vm, "import os\nos._exit(3)")
        assert crashed.complete.ename == "WorkerDied", crashed.complete
        out = await run(vm, "import sys, threading, time\ntime.sleep(1)\n"
                            "print(sorted(t.name for t in threading.enumerate()),"
                            " 'matplotlib.pyplot' in sys.modules)")
        assert "preload" not in out.stdout and out.stdout.endswith(" False\n"), out.stdout
    finally:
        await vm.stop()
