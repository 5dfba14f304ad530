"""Issue 2 on a real QEMU VM (TCG here): execution, output, interrupt, errors, clean stop."""

import asyncio
import hashlib
import re
import time
from pathlib import Path

import pytest

from sandbox_kernel import protocol as p
from sandbox_kernel.channel import DualPortChannel
from sandbox_kernel.vm import SandboxVM, VMConfig, start_vm
from tests.integration.vmtools import run

pytestmark = [pytest.mark.vm, pytest.mark.timeout(180), pytest.mark.asyncio(loop_scope="module")]


async def test_print_gives_42(vm: SandboxVM) -> None:
    out = await run(vm, "print(6*7)")
    assert out.stdout == "42\n"
    assert out.complete.status == "ok"


async def test_state_persists_between_executions(vm: SandboxVM) -> None:
    await run(vm, "persisted = {'answer': 41}")
    out = await run(vm, "persisted['answer'] += 1\nprint(persisted['answer'])")
    assert out.stdout == "42\n"


async def test_code_runs_as_the_unprivileged_user(vm: SandboxVM) -> None:
    out = await run(vm, "import os\nprint(os.getuid(), os.getgid(), os.getcwd())\n"
                        "print(open('/proc/self/status').read().count('NoNewPrivs:\\t1'))")
    assert out.stdout.split() == ["1000", "1000", "/home/user", "1"]


async def test_two_megabytes_of_output_arrive_intact(vm: SandboxVM) -> None:
    code = ("import sys\n"
            "for i in range(20000):\n"
            "    sys.stdout.write(f'{i:08d} ' + 'abcdefghij' * 9 + '\\n')\n")
    expected = "".join(f"{i:08d} " + "abcdefghij" * 9 + "\n" for i in range(20000))
    assert len(expected.encode()) >= 2_000_000
    out = await run(vm, code)
    assert hashlib.sha256(out.stdout.encode()).hexdigest() == \
        hashlib.sha256(expected.encode()).hexdigest()
    assert out.chunks > 1


async def test_multibyte_text_split_across_chunks_stays_intact(vm: SandboxVM) -> None:
    # 1-, 2-, 3- and 4-byte characters, odd lengths: chunk edges fall inside characters.
    text = "aé世🎉" * 100003
    out = await run(vm, f"import os\nos.write(1, ({text[:4]!r} * 100003).encode())")
    assert out.stdout == text
    assert "\ufffd" not in out.stdout
    assert out.chunks > 1


async def test_stderr_is_its_own_stream(vm: SandboxVM) -> None:
    out = await run(vm, "import sys\nprint('to err', file=sys.stderr)\nprint('to out')")
    assert out.stdout == "to out\n" and out.stderr == "to err\n"


async def test_output_and_displays_keep_the_order_the_cell_made_them_in(vm: SandboxVM) -> None:
    # Output and events once took separate pipes, and the agent could forward a print made
    # after a display before it: in most runs of this cell, somewhere.
    code = ("import sys, time\nfor i in range(300):\n    print(i)\n    display(i)\n"
            "    print(i, file=sys.stderr)\n    t = time.perf_counter()\n"
            "    while time.perf_counter() - t < 0.0005: pass\n")
    for _ in range(3):
        seen = []
        async for event in vm.execute(code):
            if isinstance(event, p.OutputChunk):
                seen += [(event.name, n) for n in event.text.split()]
            elif isinstance(event, p.DisplayData):
                seen.append(("display", event.data["text/plain"]))
        # Each stream keeps its order with the displays; stdout against stderr is as loose
        # as in ipykernel, each stream having its own buffer.
        for stream, before, after in (("stdout", ("stdout",), ()), ("stderr", (), ("stderr",))):
            assert [e for e in seen if e[0] in (stream, "display")] == [
                (kind, str(i)) for i in range(300) for kind in (*before, "display", *after)]


async def test_a_display_too_large_to_send_says_so(vm: SandboxVM) -> None:
    out = await run(vm, "display({'text/plain': 'x' * (20 * 2**20)}, raw=True)\nprint('after')")
    assert out.complete.status == "ok" and out.stdout == "after\n"
    assert "did not send a display_data of 20.0 MB" in out.stderr
    assert not any(isinstance(e, p.DisplayData) for e in out.events)


async def test_exception_name_value_and_traceback(vm: SandboxVM) -> None:
    out = await run(vm, "def f():\n    raise ValueError('bad value')\nf()")
    done = out.complete
    assert (done.status, done.ename, done.evalue) == ("error", "ValueError", "bad value")
    plain = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(done.traceback))
    assert "----> 3 f()" in plain and "raise ValueError('bad value')" in plain
    assert "\x1b[" in "".join(done.traceback)  # coloured like ipykernel's


async def test_busy_loop_is_interrupted_and_the_namespace_kept(vm: SandboxVM) -> None:
    await run(vm, "kept = 'still here'")
    execution = asyncio.create_task(run(vm, "while True: pass"))
    await asyncio.sleep(1.0)
    assert not execution.done()
    sent = time.monotonic()
    vm.interrupt()
    out = await asyncio.wait_for(execution, 10)
    elapsed = time.monotonic() - sent
    assert out.complete.ename == "KeyboardInterrupt"
    assert elapsed < 1.0, f"interrupt took {elapsed:.2f} s"
    after = await run(vm, "print(kept)")
    assert after.stdout == "still here\n"


async def test_interrupt_with_nothing_running_is_harmless(vm: SandboxVM) -> None:
    vm.interrupt()
    await asyncio.sleep(0.2)
    assert (await run(vm, "print('fine')")).stdout == "fine\n"


async def test_agent_survives_the_host_reconnecting(vm: SandboxVM) -> None:
    assert vm.channel is not None and vm.run is not None and vm.proc is not None
    await vm.channel.close()
    vm.channel = DualPortChannel(vm.run.cmd_socket, vm.run.evt_socket, peer=vm.proc.pid)
    await vm.channel.connect()
    await vm._wait_for_agent(vm.channel)
    assert (await run(vm, "print(persisted['answer'])")).stdout == "42\n"


async def test_worker_death_is_reported_and_a_fresh_worker_follows(vm: SandboxVM) -> None:
    out = await run(vm, "import os\nos.kill(os.getpid(), 9)")
    assert out.complete.ename == "WorkerDied"
    assert (await run(vm, "print(1 + 1)")).stdout == "2\n"


@pytest.mark.asyncio(loop_scope="function")
async def test_stop_leaves_no_process_or_socket_behind() -> None:
    machine = await start_vm(VMConfig(boot_timeout_s=45, snapshots=False))
    assert machine.proc is not None and machine.run is not None
    pid, run_dir = machine.proc.pid, machine.run.path
    assert machine.run.cmd_socket.exists()
    await machine.stop()
    assert machine.proc.returncode is not None
    assert not run_dir.exists()
    assert not Path(f"/proc/{pid}").exists()


async def test_agent_rejects_invalid_requests_without_dying(vm: SandboxVM) -> None:
    assert vm.channel is not None
    vm.channel._outbox.put_nowait(b'{"type": "execute", "id": 1}\n')  # no code
    vm.channel._outbox.put_nowait(b"\xff garbage\n")
    pong = await vm.request(p.Ping)
    assert isinstance(pong, p.Pong)


async def test_interrupt_right_after_heavy_output(vm: SandboxVM) -> None:
    # Regression: draining stdout before an event could empty a pipe that select() had
    # reported readable, and the agent then blocked reading it: the reply never came.
    for _ in range(3):
        out = await run(vm, "import sys\nfor _ in range(8192):\n"
                            "    sys.stdout.write('y' * 1023 + '\\n')")
        assert len(out.stdout) == 8 * 2**20
        execution = asyncio.create_task(run(vm, "while True: pass"))
        await asyncio.sleep(0.3)
        vm.interrupt()
        done = await asyncio.wait_for(execution, 10)
        assert done.complete.ename == "KeyboardInterrupt"


async def test_interrupting_a_printing_loop_loses_and_repeats_nothing(vm: SandboxVM) -> None:
    # The interrupt lands while output goes out more often than not: it must wait until
    # what was written is accounted for, or a buffer would write it again.
    for _ in range(3):
        execution = asyncio.create_task(run(vm, "i = 0\nwhile True:\n    print(i)\n    i += 1"))
        await asyncio.sleep(0.5)
        vm.interrupt()
        out = await asyncio.wait_for(execution, 10)
        assert out.complete.ename == "KeyboardInterrupt"
        printed = out.stdout.split()
        assert printed == [str(i) for i in range(len(printed))] and len(printed) > 100


async def test_ipython_terminal_front_end_loads_only_on_demand(vm: SandboxVM) -> None:
    out = await run(vm, "import sys, IPython\n"
                        "print('prompt_toolkit' in sys.modules, callable(IPython.embed))\n"
                        "from IPython.terminal.embed import InteractiveShellEmbed\n"
                        "import IPython.terminal.embed as real\n"
                        "print(InteractiveShellEmbed.__module__, type(real).__name__,"
                        " 'prompt_toolkit' in sys.modules)")
    assert out.stdout == "False True\nIPython.terminal.embed module True\n", out.stderr


async def test_the_worker_runs_without_pydantic(vm: SandboxVM) -> None:
    # The agent validates what the worker sends; the worker's start skips the import.
    out = await run(vm, "import sys\nprint('pydantic' in sys.modules)")
    assert out.stdout == "False\n"


async def test_the_completer_is_made_on_the_first_completion(vm: SandboxVM) -> None:
    # A cold start skips IPython's completer and its jedi import (some 0.4 s under TCG).
    made = "print(get_ipython()._completer is not None)"
    assert (await run(vm, made)).stdout == "False\n"
    reply = await vm.request(p.Complete, code="import sy", cursor_pos=9)
    assert isinstance(reply, p.CompleteReply) and "sys" in reply.matches
    assert (await run(vm, made)).stdout == "True\n"
