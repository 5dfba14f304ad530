"""SandboxKernel's other requests, host only: introspection, history and comms in both
directions, and what every request gets when there is no VM (see kernel_fakes)."""

import threading
import time
from collections.abc import Iterator

import pytest

from sandbox_kernel import protocol as p
from sandbox_kernel.errors import VMStartError
from tests.unit.kernel_fakes import (
    FakeStarter,
    InprocClient,
    ScriptedGuest,
    answer,
    done,
    iopub_of,
    kinds,
    reply_to,
    run,
    started,
)

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def client(guest: ScriptedGuest) -> Iterator[InprocClient]:
    with started(FakeStarter(guest)) as (_, client):
        yield client


def test_complete(client: InprocClient, guest: ScriptedGuest) -> None:
    guest.on("complete", lambda r: [p.CompleteReply(
        id=r.id, matches=["print", "property"], cursor_start=0, cursor_end=2,
        metadata={"_jupyter_types_experimental": []})])
    reply = reply_to(client, client.complete("pr", 2))
    request = guest.next_request()
    assert request == p.Complete(id=request.id, code="pr", cursor_pos=2)
    assert reply["msg_type"] == "complete_reply"
    assert reply["content"] == {"status": "ok", "matches": ["print", "property"],
                                "cursor_start": 0, "cursor_end": 2,
                                "metadata": {"_jupyter_types_experimental": []}}


def test_inspect_at_both_detail_levels(client: InprocClient, guest: ScriptedGuest) -> None:
    guest.on("inspect", lambda r: [p.InspectReply(
        id=r.id, found=True, data={"text/plain": f"level {r.detail_level}"})])
    first = reply_to(client, client.inspect("len", 3, detail_level=0))
    second = reply_to(client, client.inspect("len", 3, detail_level=2))
    assert [guest.next_request().detail_level for _ in range(2)] == [0, 1]
    assert first["content"] == {"status": "ok", "found": True,
                                "data": {"text/plain": "level 0"}, "metadata": {}}
    assert second["content"]["data"] == {"text/plain": "level 1"}


def test_is_complete_gives_the_indent_only_when_incomplete(
        client: InprocClient, guest: ScriptedGuest) -> None:
    guest.on("is_complete", lambda r: [p.IsCompleteReply(
        id=r.id, status="incomplete" if r.code.endswith(":") else "complete", indent="    ")])
    assert reply_to(client, client.is_complete("for x in y:"))["content"] == {
        "status": "incomplete", "indent": "    "}
    assert reply_to(client, client.is_complete("x = 1"))["content"] == {"status": "complete"}


def test_history(client: InprocClient, guest: ScriptedGuest) -> None:
    guest.on("history", lambda r: [p.HistoryReply(
        id=r.id, history=[(1, 1, "a = 1"), (1, 2, ("b", "2"))])])
    reply = reply_to(client, client.history(hist_access_type="search", pattern="a*", n=5,
                                            unique=True, output=True, raw=False))
    request = guest.next_request()
    assert request == p.History(id=request.id, hist_access_type="search", output=True,
                                raw=False, n=5, pattern="a*", unique=True)
    assert reply["content"] == {"status": "ok",
                                "history": [[1, 1, "a = 1"], [1, 2, ["b", "2"]]]}


def test_a_request_the_protocol_refuses_still_gets_its_reply(
        client: InprocClient, guest: ScriptedGuest) -> None:
    reply = reply_to(client, client.history(hist_access_type="everything"))
    assert reply["content"] == {"status": "ok", "history": []}
    reply = reply_to(client, client.inspect("x", -1))
    assert reply["content"]["found"] is False
    assert guest.seen == []


def test_comm_info(client: InprocClient, guest: ScriptedGuest) -> None:
    guest.on("comm_info", lambda r: [p.CommInfoReply(
        id=r.id, comms={"c1": {"target_name": "jupyter.widget"}})])
    reply = reply_to(client, client.comm_info("jupyter.widget"))
    assert guest.next_request().target_name == "jupyter.widget"
    assert reply["content"] == {"status": "ok",
                                "comms": {"c1": {"target_name": "jupyter.widget"}}}


def test_comm_messages_from_the_frontend_reach_the_guest_and_its_answers_come_back(
        client: InprocClient, guest: ScriptedGuest) -> None:
    guest.on("comm_open", lambda r: [
        p.OutputChunk(id=r.id, name="stdout", text="opened\n"),
        p.CommEvent(id=r.id, kind="comm_msg", comm_id=r.comm_id, data={"echo": r.data},
                    metadata={"version": "2"}, buffers=[b"\x00\x01"]),
        p.Ack(id=r.id)])
    msg = client.session.msg("comm_open", {"comm_id": "c1", "target_name": "t",
                                           "data": {"x": 1}}, metadata={"m": "d"})
    client.shell_channel.send({**msg, "buffers": [b"raw"]})
    msgs = iopub_of(client, msg["header"]["msg_id"])
    request = guest.next_request()
    assert request == p.CommOpen(id=request.id, comm_id="c1", target_name="t", data={"x": 1},
                                 metadata={"m": "d"}, buffers=[b"raw"],
                                 parent_msg_id=msg["header"]["msg_id"])
    assert kinds(msgs) == ["status:busy", "stream", "comm_msg", "status:idle"]
    sent = msgs[2]
    assert sent["content"] == {"comm_id": "c1", "data": {"echo": {"x": 1}}}
    assert sent["metadata"] == {"version": "2"}
    assert [bytes(b) for b in sent["buffers"]] == [b"\x00\x01"]


def test_comm_msg_and_close_from_the_frontend(client: InprocClient,
                                              guest: ScriptedGuest) -> None:
    guest.on("comm_msg", answer(lambda r: p.Ack(id=r.id)))
    guest.on("comm_close", answer(lambda r: p.Ack(id=r.id)))
    for kind in ("comm_msg", "comm_close"):
        msg = client.session.msg(kind, {"comm_id": "c1", "data": {"k": kind}})
        client.shell_channel.send(msg)
        iopub_of(client, msg["header"]["msg_id"])
    sent, closed = guest.next_request(), guest.next_request()
    assert sent == p.CommMsg(id=sent.id, comm_id="c1", data={"k": "comm_msg"},
                             parent_msg_id=sent.parent_msg_id)
    assert closed == p.CommClose(id=closed.id, comm_id="c1", data={"k": "comm_close"},
                                 parent_msg_id=closed.parent_msg_id)


def test_a_widget_a_cell_opens_reaches_the_frontend(client: InprocClient,
                                                    guest: ScriptedGuest) -> None:
    guest.on("execute", lambda r: [
        p.CommEvent(id=r.id, kind="comm_open", comm_id="w1", target_name="jupyter.widget",
                    target_module="ipywidgets", data={"state": {}}),
        p.CommEvent(id=r.id, kind="comm_close", comm_id="w2"),
        p.ExecuteReply(id=r.id, status="ok", execution_count=1)])
    reply, msgs = run(client, "IntSlider()")
    opened, closed = msgs[2], msgs[3]
    assert (opened["msg_type"], opened["content"]) == ("comm_open", {
        "comm_id": "w1", "data": {"state": {}}, "target_name": "jupyter.widget",
        "target_module": "ipywidgets"})
    assert (closed["msg_type"], closed["content"]) == ("comm_close",
                                                       {"comm_id": "w2", "data": {}})
    assert opened["parent_header"] == reply["parent_header"]


@pytest.mark.parametrize("error", [VMStartError("no image here"),
                                   RuntimeError("an unexpected failure")])
def test_every_request_is_answered_when_the_vm_cannot_start(error: Exception) -> None:
    with started(FakeStarter(error=error)) as (_, client):
        reply, msgs = run(client, "1 + 1")
        assert reply["content"]["status"] == "error"
        assert str(error) in reply["content"]["evalue"]
        assert kinds(msgs) == ["status:busy", "execute_input", "error", "status:idle"]
        silent, quiet = run(client, "1", silent=True)
        assert silent["content"]["status"] == "error"
        assert kinds(quiet) == ["status:busy", "status:idle"]
        assert reply_to(client, client.complete("x", 1))["content"]["matches"] == []
        assert reply_to(client, client.inspect("x", 1))["content"]["found"] is False
        assert reply_to(client, client.is_complete("x"))["content"] == {"status": "unknown"}
        assert reply_to(client, client.history())["content"]["history"] == []
        assert reply_to(client, client.comm_info())["content"]["comms"] == {}
        assert reply_to(client, client.kernel_info())["content"]["status"] == "ok"
        opened = client.session.msg("comm_open", {"comm_id": "c", "target_name": "t"})
        client.shell_channel.send(opened)
        assert kinds(iopub_of(client, opened["header"]["msg_id"])) == ["status:busy",
                                                                       "status:idle"]


def test_kernel_info_is_the_sandbox_s(client: InprocClient) -> None:
    content = reply_to(client, client.kernel_info())["content"]
    assert content["implementation"] == "sandbox-kernel"
    assert content["language_info"]["name"] == "python"
    assert content["supported_features"] == ["debugger"]  # no subshells


def test_a_comm_beside_a_request_waiting_for_the_vm_leaves_the_next_cell_its_idle(
        guest: ScriptedGuest) -> None:
    """What Lab does on opening a notebook: history waits for the VM, the widget manager's
    comm_open comes beside it, then the first cell, whose idle must come under its own parent
    (ipykernel put the history's back over it, and Lab's cell never ended)."""
    guest.on("history", lambda r: [p.HistoryReply(id=r.id, history=[])])
    guest.on("comm_open", answer(lambda r: p.Ack(id=r.id)))
    guest.on("execute", answer(done()))
    gate = threading.Event()
    with started(FakeStarter(guest, gate=gate)) as (_, client):
        history = client.history()
        assert kinds(client_iopub_until_busy(client, history)) == ["status:busy"]
        opened = client.session.msg("comm_open", {"comm_id": "c", "target_name": "t"})
        client.shell_channel.send(opened)
        cell = client.execute("x = 1")
        # No message shows that the kernel took the comm beside the history: give it time.
        time.sleep(0.3)
        gate.set()
        assert kinds(iopub_of(client, cell)) == ["status:busy", "execute_input", "status:idle"]
        assert reply_to(client, cell)["content"]["status"] == "ok"


def client_iopub_until_busy(client: InprocClient, msg_id: str) -> list[dict[str, object]]:
    while True:
        msg = client.get_iopub_msg(timeout=10)
        if msg["parent_header"].get("msg_id") == msg_id:
            return [msg]
