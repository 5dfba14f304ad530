"""SandboxKernel's cells, host only: scripted guest events in, IOPub messages and replies out,
through jupyter_client's client as a frontend sees them (see kernel_fakes)."""

import queue
import sys
import threading
import time
from types import FrameType
from typing import Any

import pytest

from sandbox_kernel import protocol as p
from sandbox_kernel.kernel.stdin import ask_frontend
from tests.unit.kernel_fakes import (
    DIES,
    TIMEOUT,
    FakeStarter,
    InprocClient,
    KernelUnderTest,
    Msg,
    ScriptedGuest,
    answer,
    control,
    done,
    iopub_of,
    kinds,
    out,
    reply_to,
    run,
    started,
)

pytestmark = pytest.mark.timeout(30)



def _content(msgs: list[Msg], msg_type: str) -> list[Msg]:
    return [m["content"] for m in msgs if m["msg_type"] == msg_type]


def test_a_cell_s_events_become_its_iopub_messages_in_order(
        kernel: tuple[KernelUnderTest, InprocClient], guest: ScriptedGuest) -> None:
    _, client = kernel
    guest.on("execute", answer(
        out("hi\n"),
        out("careful\n", "stderr"),
        lambda r: p.DisplayData(id=r.id, data={"text/plain": "shown"}, metadata={"m": 1},
                                transient={"display_id": "d1"}),
        lambda r: p.DisplayData(id=r.id, data={"text/plain": "again"},
                                transient={"display_id": "d1"}, update=True),
        lambda r: p.ClearOutput(id=r.id, wait=True),
        lambda r: p.ErrorOutput(id=r.id, ename="ValueError", evalue="shown on the way",
                                traceback=["tb"]),
        lambda r: p.ExecuteResult(id=r.id, execution_count=1, data={"text/plain": "2"}),
        done(1)))
    reply, msgs = run(client, "1 + 1")
    assert kinds(msgs) == ["status:busy", "execute_input", "stream", "stream", "display_data",
                           "update_display_data", "clear_output", "error", "execute_result",
                           "status:idle"]
    parent = reply["parent_header"]
    assert all(m["parent_header"] == parent for m in msgs)
    assert [m["content"] for m in msgs[2:9]] == [
        {"name": "stdout", "text": "hi\n"},
        {"name": "stderr", "text": "careful\n"},
        {"data": {"text/plain": "shown"}, "metadata": {"m": 1},
         "transient": {"display_id": "d1"}},
        {"data": {"text/plain": "again"}, "metadata": {}, "transient": {"display_id": "d1"}},
        {"wait": True},
        {"ename": "ValueError", "evalue": "shown on the way", "traceback": ["tb"]},
        {"execution_count": 1, "data": {"text/plain": "2"}, "metadata": {}},
    ]
    assert reply["content"] == {"status": "ok", "execution_count": 1, "payload": [],
                                "user_expressions": {}}


def test_the_request_reaches_the_guest_with_its_options(
        kernel: tuple[KernelUnderTest, InprocClient], guest: ScriptedGuest) -> None:
    _, client = kernel
    guest.on("execute", answer(done(1, user_expressions={"x": {"status": "ok"}},
                                    payload=[{"source": "page", "data": {}}])))
    msg_id = client.execute("x = 1", silent=False, store_history=False,
                            user_expressions={"x": "x"}, allow_stdin=False)
    reply = reply_to(client, msg_id)
    request = guest.next_request()
    assert request == p.Execute(id=request.id, code="x = 1", silent=False,
                                store_history=False, user_expressions={"x": "x"},
                                allow_stdin=False, parent_msg_id=msg_id)
    assert reply["content"]["user_expressions"] == {"x": {"status": "ok"}}
    assert reply["content"]["payload"] == [{"source": "page", "data": {}}]


def test_the_execution_count_follows_the_guest_s(
        kernel: tuple[KernelUnderTest, InprocClient], guest: ScriptedGuest) -> None:
    _, client = kernel
    guest.on("execute", answer(done(41)))
    _, first = run(client, "a")
    _, second = run(client, "b")
    assert _content(first, "execute_input") == [{"code": "a", "execution_count": 1}]
    assert _content(second, "execute_input") == [{"code": "b", "execution_count": 42}]


def test_an_error_the_guest_has_not_shown_is_published_by_the_kernel(
        kernel: tuple[KernelUnderTest, InprocClient], guest: ScriptedGuest) -> None:
    _, client = kernel
    guest.on("execute", answer(done(3, "error", ename="KeyboardInterrupt", evalue="",
                                    error_shown=False)))
    reply, msgs = run(client, "x")
    shown = {"ename": "KeyboardInterrupt", "evalue": "",
             "traceback": ["KeyboardInterrupt: "]}  # never an empty traceback
    assert _content(msgs, "error") == [shown]
    assert reply["content"] == {"status": "error", "execution_count": 3, **shown,
                                "payload": [], "user_expressions": {}}


def test_an_error_the_guest_has_shown_is_not_shown_twice(
        kernel: tuple[KernelUnderTest, InprocClient], guest: ScriptedGuest) -> None:
    _, client = kernel
    guest.on("execute", answer(
        lambda r: p.ErrorOutput(id=r.id, ename="NameError", evalue="x", traceback=["tb"]),
        done(1, "error", ename="NameError", evalue="x", traceback=["tb"], error_shown=True)))
    reply, msgs = run(client, "x")
    assert _content(msgs, "error") == [{"ename": "NameError", "evalue": "x",
                                        "traceback": ["tb"]}]
    assert reply["content"]["status"] == "error"
    assert reply["content"]["traceback"] == ["tb"]


def test_an_agent_error_answers_the_cell_with_an_error(
        kernel: tuple[KernelUnderTest, InprocClient], guest: ScriptedGuest) -> None:
    _, client = kernel
    guest.on("execute", answer(lambda r: p.AgentError(id=r.id, error_type="WorkerGone",
                                                      message="the worker could not start")))
    reply, msgs = run(client, "x")
    expected = "WorkerGone: the worker could not start"
    assert reply["content"]["status"] == "error"
    assert reply["content"]["evalue"] == expected
    assert _content(msgs, "error")[0]["evalue"] == expected


def test_exit_ends_the_kernel_after_its_reply(
        kernel: tuple[KernelUnderTest, InprocClient], guest: ScriptedGuest) -> None:
    under_test, client = kernel
    guest.on("execute", answer(done(1, payload=[{"source": "ask_exit", "keepkernel": False}])))
    reply, msgs = run(client, "exit()")
    assert reply["content"]["status"] == "ok"
    assert kinds(msgs)[-1] == "status:idle"  # the reply and idle go out first
    under_test.thread.join(TIMEOUT)
    assert not under_test.thread.is_alive(), "the kernel's loop did not stop"
    assert under_test.starter.vms[0].stopped


def test_exit_keeping_the_kernel_does_not_end_it(
        kernel: tuple[KernelUnderTest, InprocClient], guest: ScriptedGuest) -> None:
    under_test, client = kernel
    guest.on("execute", answer(done(1, payload=[{"source": "ask_exit", "keepkernel": True}])))
    run(client, "exit(keep_kernel=True)")
    time.sleep(0.2)  # an exit would have stopped the loop after 0.1 s
    assert under_test.thread.is_alive()
    assert run(client, "1")[0]["content"]["status"] == "ok"


def test_an_interrupt_reaches_the_guest_while_a_cell_runs(
        kernel: tuple[KernelUnderTest, InprocClient], guest: ScriptedGuest) -> None:
    _, client = kernel
    guest.on("execute", answer())  # runs until interrupted
    guest.on("interrupt", lambda r: [
        p.Ack(id=r.id),
        p.ErrorOutput(id=guest.last("execute").id, ename="KeyboardInterrupt", evalue="",
                      traceback=["KeyboardInterrupt"]),
        p.ExecuteReply(id=guest.last("execute").id, status="error", execution_count=1,
                       ename="KeyboardInterrupt", error_shown=True)])
    msg_id = client.execute("while True: pass")
    assert isinstance(guest.next_request(), p.Execute)
    assert control(client, "interrupt_request")["content"] == {"status": "ok"}
    assert isinstance(guest.next_request(), p.Interrupt)
    reply = reply_to(client, msg_id)
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    assert kinds(iopub_of(client, msg_id)) == ["status:busy", "execute_input", "error",
                                               "status:idle"]


def test_an_interrupt_between_cells_sends_the_guest_nothing(
        kernel: tuple[KernelUnderTest, InprocClient], guest: ScriptedGuest) -> None:
    _, client = kernel
    guest.on("execute", answer(done(1)))
    run(client, "1")
    assert control(client, "interrupt_request")["content"] == {"status": "ok"}
    run(client, "2")
    assert [r.type for r in guest.seen] == ["execute", "execute"]


def test_a_finished_cell_s_late_output_goes_under_that_cell(
        kernel: tuple[KernelUnderTest, InprocClient], guest: ScriptedGuest) -> None:
    _, client = kernel
    guest.on("execute", answer(done(1)))
    first, _ = run(client, "start_a_thread()")
    first_id = guest.last("execute").id
    second_id = client.execute("2")
    reply_to(client, second_id)
    guest.say(p.OutputChunk(id=first_id, name="stdout", text="from the thread\n"),
              p.OutputChunk(id=99, name="stdout", text="nobody's\n"),  # dropped
              p.CommEvent(id=99, kind="comm_msg", comm_id="w1", data={"v": 1}))
    late = [client.get_iopub_msg(timeout=TIMEOUT) for _ in range(5)]
    late = [m for m in late if m["msg_type"] != "status" and m["msg_type"] != "execute_input"]
    assert [(m["msg_type"], m["content"]) for m in late] == [
        ("stream", {"name": "stdout", "text": "from the thread\n"}),
        ("comm_msg", {"comm_id": "w1", "data": {"v": 1}})]
    assert late[0]["parent_header"] == first["parent_header"]
    # A comm message of a request nobody waits for: under the latest, as ipykernel does.
    assert late[1]["parent_header"]["msg_id"] == second_id


def test_input_is_asked_on_stdin_and_the_answer_reaches_the_guest(
        kernel: tuple[KernelUnderTest, InprocClient], guest: ScriptedGuest) -> None:
    _, client = kernel
    guest.on("execute", answer(lambda r: p.InputRequest(id=r.id, prompt="Password: ",
                                                        password=True)))
    guest.on("input_reply", lambda r: [p.OutputChunk(id=r.id, name="stdout", text="ok\n"),
                                       p.ExecuteReply(id=r.id, status="ok", execution_count=1)])
    msg_id = client.execute("getpass()", allow_stdin=True)
    asked = client.get_stdin_msg(timeout=TIMEOUT)
    assert asked["msg_type"] == "input_request"
    assert asked["content"] == {"prompt": "Password: ", "password": True}
    assert asked["parent_header"]["msg_id"] == msg_id
    client.input("s3cret")
    assert reply_to(client, msg_id)["content"]["status"] == "ok"
    execute, answered = guest.next_request(), guest.next_request()
    assert answered == p.InputReply(id=execute.id, value="s3cret")
    assert _content(iopub_of(client, msg_id), "stream") == [{"name": "stdout", "text": "ok\n"}]


def test_a_question_the_cell_no_longer_waits_for_is_withdrawn(
        kernel: tuple[KernelUnderTest, InprocClient], guest: ScriptedGuest) -> None:
    _, client = kernel
    guest.on("execute", answer(lambda r: p.InputRequest(id=r.id, prompt="? ")))
    msg_id = client.execute("input()", allow_stdin=True)
    assert client.get_stdin_msg(timeout=TIMEOUT)["msg_type"] == "input_request"
    cell = guest.next_request()
    guest.say(p.ExecuteReply(id=cell.id, status="ok", execution_count=1))  # interrupted, say
    reply_to(client, msg_id)
    # The thread that waited for the answer has stopped waiting: left waiting, it would
    # take the answer to the next cell's question.
    deadline = time.monotonic() + 0.5
    while _asking_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _asking_threads() == 0
    client.input("too late")  # and nobody hands this to the guest
    with pytest.raises(queue.Empty):
        guest.next_request(timeout=0.1)


def _asking_threads() -> int:
    """Threads now waiting in ``ask_frontend`` for a frontend's answer."""
    def asking(frame: FrameType | None) -> bool:
        while frame is not None:
            if frame.f_code is ask_frontend.__code__:
                return True
            frame = frame.f_back
        return False

    return sum(asking(frame) for frame in sys._current_frames().values())


def test_a_vm_that_dies_during_a_cell_gets_an_error_reply_that_says_what_to_do(
        kernel: tuple[KernelUnderTest, InprocClient], guest: ScriptedGuest) -> None:
    _, client = kernel
    guest.on("execute", answer(out("partial\n"), DIES))
    reply, msgs = run(client, "crash()")
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "VMDied"
    assert "Restart the kernel" in reply["content"]["evalue"]
    assert kinds(msgs) == ["status:busy", "execute_input", "stream", "error", "status:idle"]
    # And every later request is answered at once, never left waiting.
    again, _ = run(client, "1")
    assert again["content"]["ename"] == "VMDied"
    completed = reply_to(client, client.complete("pri", 3))
    assert completed["content"]["matches"] == []


def test_a_cell_sent_while_the_vm_starts_waits_for_it(guest: ScriptedGuest) -> None:
    gate = threading.Event()
    guest.on("execute", answer(out("ran\n"), done(1)))
    with started(FakeStarter(guest, gate=gate), memory_mb=2048, cpus=3) as (under_test, client):
        msg_id = client.execute("print('ran')")
        time.sleep(0.05)
        assert guest.seen == []
        gate.set()
        assert reply_to(client, msg_id)["content"]["status"] == "ok"
        config = under_test.starter.configs[0]
        assert (config.memory_mb, config.cpus) == (2048, 3)  # the kernel's settings


def test_a_shutdown_during_the_vm_start_cancels_it(guest: ScriptedGuest) -> None:
    starter = FakeStarter(guest, gate=threading.Event())
    with started(starter) as (under_test, _):
        assert under_test.kernel is not None
        while not starter.configs:  # the start is under way
            time.sleep(0.002)
        under_test.on_loop(under_test.kernel.do_shutdown(False))
        assert starter.cancelled.is_set()
        assert starter.vms == []


def test_a_shutdown_stops_the_vm(kernel: tuple[KernelUnderTest, InprocClient],
                                 guest: ScriptedGuest) -> None:
    under_test, client = kernel
    guest.on("execute", answer(done(1)))
    run(client, "1")
    assert under_test.kernel is not None
    reply: Any = under_test.on_loop(under_test.kernel.do_shutdown(True))
    assert reply == {"status": "ok", "restart": True}
    assert under_test.starter.vms[0].stopped


def test_input_requests_the_cell_forges_while_one_is_open_are_dropped(
        kernel: tuple[KernelUnderTest, InprocClient], guest: ScriptedGuest) -> None:
    # The worker runs the cell's code, which can write any event: several questions at once
    # used to have the stdin socket used from several threads, and zmq abort the kernel.
    _, client = kernel
    guest.on("execute", answer(*(lambda r, i=i: p.InputRequest(id=r.id, prompt=f"q{i}")
                                 for i in range(8))))
    guest.on("input_reply", lambda r: [p.ExecuteReply(id=r.id, status="ok", execution_count=1)])
    msg_id = client.execute("input()", allow_stdin=True)
    asked = client.get_stdin_msg(timeout=TIMEOUT)
    assert asked["content"]["prompt"] == "q0"
    with pytest.raises(queue.Empty):
        client.get_stdin_msg(timeout=0.3)
    client.input("one")
    assert reply_to(client, msg_id)["content"]["status"] == "ok"
    execute = guest.next_request()
    assert guest.next_request() == p.InputReply(id=execute.id, value="one")
    with pytest.raises(queue.Empty):
        guest.next_request(timeout=0.2)


def test_one_question_at_a_time_uses_the_stdin_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    from sandbox_kernel.kernel import stdin

    inside: list[int] = []
    most: list[int] = []

    def ask(*args: object) -> str:
        inside.append(1)
        most.append(len(inside))
        time.sleep(0.02)
        inside.pop()
        return "answer"

    monkeypatch.setattr(stdin, "_ask", ask)
    never = threading.Event()
    threads = [threading.Thread(target=ask_frontend, args=(None, "?", False, {}, None, never))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert len(most) == 8 and max(most) == 1


def test_a_cell_too_large_for_the_channel_is_answered_at_once(
        kernel: tuple[KernelUnderTest, InprocClient], guest: ScriptedGuest) -> None:
    # The agent drops a line over the limit; the cell then waited for ever.
    _, client = kernel
    reply, msgs = run(client, "x = 1\n" + "#" * (17 * 2**20))
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "RequestTooLarge"
    assert "at most 16 MB" in reply["content"]["evalue"]
    assert [m["content"]["ename"] for m in msgs if m["msg_type"] == "error"] == [
        "RequestTooLarge"]
    with pytest.raises(queue.Empty):
        guest.next_request(timeout=0.1)


def test_display_keys_that_are_not_mime_types_are_dropped(
        kernel: tuple[KernelUnderTest, InprocClient], guest: ScriptedGuest) -> None:
    _, client = kernel
    forged = {"text/plain": "shown", "image/svg+xml": "<svg/>", "not a mime type": "x",
              "../../../etc/passwd": "x", "text/": "x", "": "x", "a/b/c": "x"}
    guest.on("execute", answer(
        lambda r: p.DisplayData(id=r.id, data=forged),
        lambda r: p.ExecuteResult(id=r.id, execution_count=1, data=forged),
        done(1)))
    _, msgs = run(client, "display()")
    bundles = [m["content"]["data"] for m in msgs
               if m["msg_type"] in ("display_data", "execute_result")]
    assert bundles == [{"text/plain": "shown", "image/svg+xml": "<svg/>"}] * 2


def test_a_forged_answer_does_not_end_the_running_cell(
        kernel: tuple[KernelUnderTest, InprocClient], guest: ScriptedGuest) -> None:
    # Once, a complete_reply with the cell's id ended the cell as if its VM had died.
    _, client = kernel
    guest.on("execute", answer(
        lambda r: p.CompleteReply(id=r.id, matches=[], cursor_start=0, cursor_end=0),
        lambda r: p.Pong(id=r.id, agent_version="forged"),
        lambda r: p.Ack(id=r.id),
        out("still running\n"),
        done(1)))
    reply, msgs = run(client, "1")
    assert reply["content"]["status"] == "ok"
    assert _content(msgs, "stream") == [{"name": "stdout", "text": "still running\n"}]
