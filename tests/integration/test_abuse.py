"""Cells that abuse the worker: what they do must end in a reply, and the next cell runs."""

import time

import pytest

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
