import pytest
from pydantic import ValidationError

from sandbox_kernel import protocol as p


def test_requests_round_trip_through_the_discriminated_union() -> None:
    sent = p.Execute(id=7, code="print(1)", silent=True, user_expressions={"a": "1+1"})
    back = p.REQUEST_ADAPTER.validate_json(p.encode(sent))
    assert back == sent


def test_events_round_trip_including_binary_comm_buffers() -> None:
    sent = p.CommEvent(id=3, kind="comm_msg", comm_id="c1", buffers=[b"\x00\xff"])
    back = p.EVENT_ADAPTER.validate_json(p.encode(sent))
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
    with pytest.raises(ValidationError):
        p.REQUEST_ADAPTER.validate_json(raw)


def test_final_events_end_streams() -> None:
    assert isinstance(p.ExecutionComplete(id=1, status="ok"), p.FINAL_EVENTS)
    assert not isinstance(p.OutputChunk(id=1, name="stdout", text=""), p.FINAL_EVENTS)
