"""stdin: input(), getpass and a frontend without stdin."""


import pytest

from tests.kernel.kernels import (
    Kernel,
    iopub_until_idle,
    run,
    stdout_of,
)

pytestmark = [pytest.mark.vm, pytest.mark.timeout(240)]


def test_input_round_trip(kernel: Kernel) -> None:
    _, kc = kernel
    msg_id = kc.execute("name = input('Your name? ')\nprint('hi', name)", allow_stdin=True)
    request = kc.get_stdin_msg(timeout=60)
    assert request["msg_type"] == "input_request"
    assert request["content"] == {"prompt": "Your name? ", "password": False}
    kc.input("Ada")
    reply = kc.get_shell_msg(timeout=60)
    assert reply["content"]["status"] == "ok"
    assert stdout_of(iopub_until_idle(kc, msg_id)) == "hi Ada\n"


def test_getpass_asks_for_a_password(kernel: Kernel) -> None:
    _, kc = kernel
    msg_id = kc.execute("import getpass\nsecret = getpass.getpass()\nprint(len(secret))",
                        allow_stdin=True)
    request = kc.get_stdin_msg(timeout=60)
    assert request["content"]["password"] is True
    kc.input("hunter2")
    reply = kc.get_shell_msg(timeout=60)
    msgs = iopub_until_idle(kc, msg_id)
    assert reply["content"]["status"] == "ok", (reply, msgs)
    assert stdout_of(msgs) == "7\n", msgs


def test_input_without_stdin_fails_clearly_and_does_not_hang(kernel: Kernel) -> None:
    _, kc = kernel
    reply, _ = run(kc, "input('?')", allow_stdin=False, timeout=30)
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "StdinNotImplementedError"
