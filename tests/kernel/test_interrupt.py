"""Interrupting a cell: by message, by SIGINT, while it waits for input, and when idle."""

import os
import signal
import time
from pathlib import Path

import pytest

from tests.kernel.kernels import (
    Kernel,
    iopub_until_idle,
    kernel_pid,
    qemu_children,
    run,
    stdout_of,
)

pytestmark = [pytest.mark.vm, pytest.mark.timeout(240)]


def test_interrupt_message_stops_a_busy_cell_and_keeps_state(kernel: Kernel) -> None:
    km, kc = kernel
    run(kc, "survivor = 'still here'")
    msg_id = kc.execute("while True: pass")
    time.sleep(1.0)
    sent = time.monotonic()
    km.interrupt_kernel()
    reply = kc.get_shell_msg(timeout=30)
    elapsed = time.monotonic() - sent
    assert reply["parent_header"]["msg_id"] == msg_id
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    assert elapsed < 5
    iopub_until_idle(kc, msg_id)
    _, msgs = run(kc, "print(survivor)")
    assert stdout_of(msgs) == "still here\n"


def test_sigint_during_a_cell_interrupts_it_and_the_kernel_lives_on(kernel: Kernel) -> None:
    # What a frontend that signals the kernel (ignoring the kernelspec's interrupt_mode), or a
    # user's kill -INT, does to ipykernel: the cell stops, the kernel stays.
    km, kc = kernel
    run(kc, "survivor = 'still here'")
    msg_id = kc.execute("while True: pass")
    time.sleep(1.0)
    km.signal_kernel(signal.SIGINT)
    reply = kc.get_shell_msg(timeout=30)
    assert reply["parent_header"]["msg_id"] == msg_id
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    iopub_until_idle(kc, msg_id)
    assert km.is_alive()
    assert stdout_of(run(kc, "print(survivor)")[1]) == "still here\n"


def test_interrupt_while_waiting_for_input(kernel: Kernel) -> None:
    km, kc = kernel
    msg_id = kc.execute("input('never answered')", allow_stdin=True)
    kc.get_stdin_msg(timeout=60)
    km.interrupt_kernel()
    reply = kc.get_shell_msg(timeout=30)
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    iopub_until_idle(kc, msg_id)
    assert stdout_of(run(kc, "print('after')")[1]) == "after\n"


def test_interrupt_with_nothing_running_is_harmless(kernel: Kernel) -> None:
    km, kc = kernel
    km.interrupt_kernel()
    time.sleep(0.3)
    assert stdout_of(run(kc, "print('ok')")[1]) == "ok\n"


def test_sigint_to_the_kernel_process_group_does_not_kill_qemu(kernel: Kernel) -> None:
    km, kc = kernel
    pid = kernel_pid(km)
    qemu = qemu_children(pid)
    assert qemu, "the kernel should own a QEMU process"
    os.killpg(os.getpgid(pid), signal.SIGINT)
    time.sleep(0.5)
    assert all(Path(f"/proc/{q}").exists() for q in qemu)
    assert stdout_of(run(kc, "print(survivor)")[1]) == "still here\n"
