"""Property-based tests of what the host takes from outside: every line a guest could send,
and every Jupyter request with any content. No exception may escape, and every request that
has a reply gets one. `make fuzz` runs these with many more inputs (FUZZ_EXAMPLES)."""

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox_kernel import protocol as p
from sandbox_kernel.kernel.requests import CONTENTS
from tests.unit.kernel_fakes import (
    FakeStarter,
    InprocClient,
    ScriptedGuest,
    answer,
    done,
    reply_to,
    started,
)

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "200"))
pytestmark = pytest.mark.timeout(max(120, EXAMPLES // 20))
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12)


def _event_like(kind: str) -> st.SearchStrategy[dict[str, Any]]:
    fields = list(p.EVENTS[kind].model_fields)
    return st.fixed_dictionaries({"id": st.integers(-5, 2**64), "type": st.just(kind)},
                                 optional={f: json_values for f in fields
                                           if f not in ("type", "id")})


guest_lines = st.one_of(
    st.binary(max_size=300),
    st.sampled_from(sorted(p.EVENTS)).flatmap(_event_like).map(
        lambda d: json.dumps(d).encode()),
)


@FUZZ
@given(guest_lines)
def test_decoding_a_guest_line_either_gives_an_event_or_says_why(line: bytes) -> None:
    try:
        event = p.parse_event(line)
    except p.MessageError:
        return
    assert event.type in p.EVENTS


# --- every request, any content -----------------------------------------------------------

# What each channel carries (ipykernel's lists), less shutdown, which would end the kernel.
SHELL = ["execute_request", "complete_request", "inspect_request", "history_request",
         "comm_info_request", "kernel_info_request", "connect_request", "is_complete_request",
         "interrupt_request"]
CONTROL = [*SHELL, "debug_request", "usage_request", "create_subshell_request",
           "delete_subshell_request", "list_subshell_request"]
SILENT = ["comm_open", "comm_msg", "comm_close"]  # no reply in the protocol
REQUESTS = [("shell", t) for t in SHELL + SILENT] + [("control", t) for t in CONTROL]


def _content_for(msg_type: str) -> st.SearchStrategy[Any]:
    known = {name: json_values | st.from_type(types[0])
             for name, (types, _) in CONTENTS.get(msg_type, {}).items()}
    # A JSON object, as jupyter_client sends every content: its known fields of any type.
    well_formed = st.fixed_dictionaries({}, optional=known)
    return st.one_of(well_formed, st.dictionaries(st.text(max_size=12), json_values,
                                                  max_size=6))


def _guest() -> ScriptedGuest:
    guest = ScriptedGuest()
    guest.on("execute", answer(done(1)))
    guest.on("complete", lambda r: [p.CompleteReply(id=r.id, matches=[], cursor_start=0,
                                                    cursor_end=0)])
    guest.on("inspect", lambda r: [p.InspectReply(id=r.id, found=False)])
    guest.on("is_complete", lambda r: [p.IsCompleteReply(id=r.id, status="unknown")])
    guest.on("history", lambda r: [p.HistoryReply(id=r.id, history=[])])
    guest.on("comm_info", lambda r: [p.CommInfoReply(id=r.id, comms={})])
    for kind in ("comm_open", "comm_msg", "comm_close", "interrupt", "dump_cell", "debug_stop"):
        guest.on(kind, lambda r: [p.Ack(id=r.id)])
    guest.on("debug_start", lambda r: [p.DebugStarted(id=r.id, port=5678,
                                                      tmp_prefix="/tmp/ipykernel_7/")])
    guest.on("debug_inspect", lambda r: [p.DebugInspectReply(id=r.id, body={})])
    return guest


_GUESTS: dict[int, ScriptedGuest] = {}


@pytest.fixture(scope="module")
def client() -> Iterator[InprocClient]:
    guest = _guest()
    with started(FakeStarter(guest)) as (_, client):
        _GUESTS[id(client)] = guest
        yield client
        del _GUESTS[id(client)]


def _guest_of(client: InprocClient) -> ScriptedGuest:
    return _GUESTS[id(client)]


def _send(client: InprocClient, channel: str, msg_type: str, content: Any) -> str:
    msg = client.session.msg(msg_type, content={})
    msg["content"] = content  # as sent on the wire: whatever the frontend chose
    getattr(client, f"{channel}_channel").send(msg)
    return str(msg["header"]["msg_id"])


@FUZZ
@given(data=st.data())
def test_every_request_gets_a_reply_whatever_its_content(client: InprocClient,
                                                         data: st.DataObject) -> None:
    channel, msg_type = data.draw(st.sampled_from(REQUESTS))
    content = data.draw(_content_for(msg_type))
    msg_id = _send(client, channel, msg_type, content)
    if msg_type in SILENT:  # no reply of its own: the kernel must still answer the next
        channel, msg_type = "shell", "kernel_info_request"
        msg_id = _send(client, channel, msg_type, {})
    reply = reply_to(client, msg_id, channel)
    assert reply["msg_type"] == msg_type.removesuffix("_request") + "_reply"
    if msg_type == "debug_request":  # a DAP response, which has no status
        assert reply["content"]["type"] == "response"
        assert isinstance(reply["content"]["success"], bool)
        return
    statuses = (("complete", "incomplete", "invalid", "unknown")
                if msg_type == "is_complete_request" else ("ok", "error", "aborted"))
    assert reply["content"]["status"] in statuses


@pytest.mark.parametrize("content", [{}, {"restart": "yes"}, {"restart": None}])
def test_a_shutdown_request_it_cannot_read_gets_an_error_reply(client: InprocClient,
                                                              content: Any) -> None:
    reply = reply_to(client, _send(client, "control", "shutdown_request", content), "control")
    assert reply["msg_type"] == "shutdown_reply" and reply["content"]["status"] == "error"


# --- a guest that sends anything, in any order --------------------------------------------

_OFFSETS = ("this cell", "next", "previous", "none", "far")
_ENDS_A_CELL = (p.ExecuteReply, p.AgentError)


def _event_id(offset: str, cell_id: int) -> int:
    return {"this cell": cell_id, "next": cell_id + 1, "previous": max(cell_id - 1, 0),
            "none": 0, "far": 2**40}[offset]


_text = st.text(max_size=30)
_bundle = st.dictionaries(_text, json_values, max_size=3)
# Any event the guest can send, with id 1 to be replaced by one relative to the cell's.
_events = st.one_of(
    st.builds(p.OutputChunk, id=st.just(1), name=st.sampled_from(["stdout", "stderr"]),
              text=_text),
    st.builds(p.DisplayData, id=st.just(1), data=_bundle, update=st.booleans()),
    st.builds(p.ExecuteResult, id=st.just(1), execution_count=st.integers(-3, 10),
              data=_bundle),
    st.builds(p.ClearOutput, id=st.just(1), wait=st.booleans()),
    st.builds(p.ErrorOutput, id=st.just(1), ename=_text, evalue=_text,
              traceback=st.lists(_text, max_size=3)),
    st.builds(p.InputRequest, id=st.just(1), prompt=_text, password=st.booleans()),
    st.builds(p.CommEvent, id=st.just(1),
              kind=st.sampled_from(["comm_open", "comm_msg", "comm_close"]),
              comm_id=_text, data=_bundle),
    st.builds(p.CompleteReply, id=st.just(1), matches=st.lists(_text, max_size=3),
              cursor_start=st.integers(0, 5), cursor_end=st.integers(0, 5)),
    st.builds(p.Ack, id=st.just(1)), st.builds(p.Pong, id=st.just(1), agent_version=_text),
    st.builds(p.Hello, id=st.just(1), agent_version=_text),
    st.builds(p.AgentError, id=st.just(1), error_type=_text, message=_text),
    st.builds(p.ExecuteReply, id=st.just(1), status=st.sampled_from(["ok", "error"])),
)
_placed = st.tuples(st.sampled_from(_OFFSETS), _events).filter(
    lambda pair: not (pair[0] == "this cell" and isinstance(pair[1], _ENDS_A_CELL)))


@FUZZ
@given(data=st.data())
def test_a_cell_ends_whatever_the_guest_sends_first(client: InprocClient,
                                                   data: st.DataObject) -> None:
    guest = _guest_of(client)
    placed = data.draw(st.lists(_placed, max_size=12))

    def anything_then_done(request: Any) -> list[p.Message]:
        sent = [event.model_copy(update={"id": _event_id(offset, request.id)})
                for offset, event in placed]
        return [*sent, p.ExecuteReply(id=request.id, status="ok", execution_count=1)]

    guest.on("execute", anything_then_done)
    try:
        reply = reply_to(client, client.execute("1", allow_stdin=False))
        assert reply["content"]["status"] == "ok", (reply["content"], placed)
        info = reply_to(client, client.kernel_info())
        assert info["content"]["status"] == "ok"
    finally:
        guest.on("execute", answer(done(1)))
