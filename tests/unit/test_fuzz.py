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
    for kind in ("comm_open", "comm_msg", "comm_close", "interrupt"):
        guest.on(kind, lambda r: [p.Ack(id=r.id)])
    return guest


@pytest.fixture(scope="module")
def client() -> Iterator[InprocClient]:
    with started(FakeStarter(_guest())) as (_, client):
        yield client


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
    statuses = (("complete", "incomplete", "invalid", "unknown")
                if msg_type == "is_complete_request" else ("ok", "error", "aborted"))
    assert reply["content"]["status"] in statuses


@pytest.mark.parametrize("content", [{}, {"restart": "yes"}, {"restart": None}])
def test_a_shutdown_request_it_cannot_read_gets_an_error_reply(client: InprocClient,
                                                              content: Any) -> None:
    reply = reply_to(client, _send(client, "control", "shutdown_request", content), "control")
    assert reply["msg_type"] == "shutdown_reply" and reply["content"]["status"] == "error"
