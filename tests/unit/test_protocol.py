import pytest

from sandbox_kernel import protocol as p


def test_requests_round_trip_through_the_discriminated_union() -> None:
    sent = p.Execute(id=7, code="print(1)", silent=True, user_expressions={"a": "1+1"})
    back = p.parse_request(p.encode(sent))
    assert back == sent


def test_events_round_trip_including_binary_comm_buffers() -> None:
    sent = p.CommEvent(id=3, kind="comm_msg", comm_id="c1", buffers=[b"\x00\xff"])
    back = p.parse_event(p.encode(sent))
    assert isinstance(back, p.CommEvent)
    assert back.buffers == [b"\x00\xff"]


def test_encoding_is_one_line() -> None:
    line = p.encode(p.OutputChunk(id=1, name="stdout", text="a\nb\n"))
    assert line.endswith(b"\n") and line.count(b"\n") == 1


@pytest.mark.parametrize("raw", [
    b'{"type": "execute", "id": 1}',                      # code missing
    b'{"type": "execute", "id": -1, "code": ""}',         # negative id
    b'{"type": "rm -rf", "id": 1}',                       # unknown type
    b'{"type": "ping", "id": 1, "extra": true}',          # unknown field
    b"not json",
])
def test_invalid_requests_are_rejected(raw: bytes) -> None:
    with pytest.raises(p.MessageError):
        p.parse_request(raw)


def test_final_events_end_streams() -> None:
    assert isinstance(p.ExecuteReply(id=1, status="ok"), p.FINAL_EVENTS)
    assert not isinstance(p.OutputChunk(id=1, name="stdout", text=""), p.FINAL_EVENTS)


def test_every_union_member_is_reachable_by_its_type() -> None:
    assert set(p.REQUESTS) >= {"ping", "execute", "interrupt", "input_reply", "reseed"}
    assert set(p.EVENTS) >= {"pong", "output", "execute_reply", "display_data", "agent_error"}
    for name, model in {**p.REQUESTS, **p.EVENTS}.items():
        assert model.model_fields["type"].default == name


def test_an_event_is_not_a_request() -> None:
    with pytest.raises(p.MessageError):
        p.parse_request(p.encode(p.Pong(id=1, agent_version="x")))


def test_a_line_whose_head_lies_about_its_type_is_rejected() -> None:
    lying = b'{"id":1,"type":"ping","code":"x"}'
    with pytest.raises(p.MessageError):
        p.parse_request(lying)
    reordered = b'{"type":"ping","id":3}'
    assert p.parse_request(reordered) == p.Ping(id=3)
