"""The worker's plain-JSON lines must be what the agent's pydantic models accept."""

import pytest

from sandbox_kernel import protocol as p
from sandbox_kernel.guest import wire


@pytest.mark.parametrize(("kind", "fields"), [
    ("hello", {"agent_version": "1"}),
    ("ack", {}),
    ("execute_result", {"execution_count": 3, "data": {"text/plain": "2"}, "metadata": {}}),
    ("display_data", {"data": {"image/png": "iVBO"}, "metadata": {}, "transient":
                      {"display_id": "x"}, "update": True}),
    ("clear_output", {"wait": True}),
    ("input_request", {"prompt": "name? ", "password": False}),
    ("execute_reply", {"status": "error", "execution_count": 2, "ename": "E", "evalue": "v",
                       "traceback": ["t"], "payload": []}),
    ("comm", {"kind": "comm_msg", "comm_id": "c", "target_name": None, "target_module": None,
              "data": {"a": [1]}, "metadata": {}, "buffers": wire.to_base64([b"\x00\xff"])}),
    ("history_reply", {"history": [(1, 2, "x = 1"), (1, 3, ("y", "2"))]}),
    ("agent_error", {"error_type": "KeyboardInterrupt", "message": ""}),
])
def test_worker_events_validate_against_the_protocol(kind: str, fields: dict[str, object]) -> None:
    event = p.parse_event(wire.encode(kind, 7, **fields))
    assert event.id == 7 and event.type == kind


def test_comm_buffers_survive_base64_both_ways() -> None:
    line = wire.encode("comm", 1, kind="comm_open", comm_id="c", target_name="t",
                       buffers=wire.to_base64([b"\x00\x01binary"]))
    event = p.parse_event(line)
    assert isinstance(event, p.CommEvent) and event.buffers == [b"\x00\x01binary"]
    request = wire.parse_request(p.encode(p.CommMsg(id=2, comm_id="c", buffers=[b"\xfe"])))
    assert request.type == "comm_msg" and wire.from_base64(request.buffers) == [b"\xfe"]


def test_unencodable_values_become_their_repr() -> None:
    event = p.parse_event(wire.encode("inspect_reply", 1, found=True,
                                      data={"text/plain": {1, 2}}))
    assert isinstance(event, p.InspectReply) and event.data["text/plain"] == "{1, 2}"


def test_a_request_line_that_is_not_a_request_is_refused() -> None:
    for line in (b"[1, 2]", b'{"id": 1}', b"not json"):
        with pytest.raises(ValueError):
            wire.parse_request(line)


@pytest.mark.parametrize("value", [
    2**70,  # beyond orjson's 64 bits
    "lone \ud800 surrogate",  # not valid UTF-8
    {1: "int key", None: "null key"},
    float("nan"),
])
def test_values_orjson_refuses_or_differs_on_still_make_a_valid_event(value: object) -> None:
    event = p.parse_event(wire.encode("execute_result", 3, execution_count=1,
                                      data={"text/plain": "x"}, metadata={"v": value}))
    assert isinstance(event, p.ExecuteResult) and event.id == 3
    assert "v" in event.metadata
