"""The host channel against a fake guest that serves the two Unix sockets, as QEMU would."""

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from sandbox_kernel import protocol as p
from sandbox_kernel.channel import (
    WRITE_QUEUE_DEPTH,
    ChannelBusy,
    ChannelClosed,
    DualPortChannel,
)
from sandbox_kernel.errors import ProtocolError


class FakeGuest:
    def __init__(self, folder: Path) -> None:
        self.cmd_path = folder / "cmd.sock"
        self.evt_path = folder / "evt.sock"
        self.requests: asyncio.Queue[dict[str, object]] = asyncio.Queue()
        self.evt: asyncio.StreamWriter | None = None
        self.evt_ready = asyncio.Event()

    async def start(self) -> None:
        self.servers = [
            await asyncio.start_unix_server(self._on_cmd, self.cmd_path),
            await asyncio.start_unix_server(self._on_evt, self.evt_path),
        ]

    async def _on_cmd(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            await self.requests.put(json.loads(line))

    async def _on_evt(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.evt = writer
        self.evt_ready.set()

    async def say(self, raw: bytes) -> None:
        await self.evt_ready.wait()
        assert self.evt is not None
        self.evt.write(raw)
        await self.evt.drain()

    async def close(self) -> None:
        if self.evt is not None:
            self.evt.close()
        for server in self.servers:
            server.close()


@pytest_asyncio.fixture(loop_scope="function")
async def guest(tmp_path: Path) -> AsyncIterator[FakeGuest]:
    g = FakeGuest(tmp_path)
    await g.start()
    yield g
    await g.close()


async def connected(guest: FakeGuest, **kw: object) -> DualPortChannel:
    channel = DualPortChannel(guest.cmd_path, guest.evt_path, peer=os.getpid(), **kw)  # type: ignore[arg-type]
    await channel.connect()
    return channel


async def ping_in_flight(guest: FakeGuest, **kw: object
                         ) -> tuple[DualPortChannel, "asyncio.Task[p.Event]"]:
    """A connected channel with a ping the guest has read but not answered."""
    channel = await connected(guest, **kw)
    reply = asyncio.create_task(channel.request(p.Ping(id=1)))
    await guest.requests.get()
    return channel, reply


@pytest.mark.asyncio(loop_scope="function")
async def test_request_gets_the_reply_with_its_id(guest: FakeGuest) -> None:
    channel = await connected(guest)
    reply = asyncio.create_task(channel.request(p.Ping(id=5)))
    req = await guest.requests.get()
    assert req == {"id": 5, "type": "ping"}
    await guest.say(p.encode(p.Pong(id=4, agent_version="x")))  # someone else's
    await guest.say(p.encode(p.Pong(id=5, agent_version="1")))
    assert (await reply) == p.Pong(id=5, agent_version="1")
    await channel.close()


@pytest.mark.asyncio(loop_scope="function")
async def test_stream_yields_until_completion(guest: FakeGuest) -> None:
    channel = await connected(guest)

    async def guest_side() -> None:
        await guest.requests.get()
        await guest.say(p.encode(p.OutputChunk(id=1, name="stdout", text="a")))
        await guest.say(p.encode(p.ExecuteReply(id=1, status="ok")))
        await guest.say(p.encode(p.OutputChunk(id=1, name="stdout", text="late")))

    task = asyncio.create_task(guest_side())
    events = [e async for e in channel.stream(p.Execute(id=1, code="x"))]
    await task
    assert [type(e) for e in events] == [p.OutputChunk, p.ExecuteReply]
    await channel.close()


@pytest.mark.asyncio(loop_scope="function")
async def test_events_after_the_final_one_go_to_the_late_handler(guest: FakeGuest) -> None:
    channel = await connected(guest)
    late: list[p.Event] = []
    both_late = asyncio.Event()

    def on_late(event: p.Event) -> None:
        late.append(event)
        if len(late) == 2:
            both_late.set()

    channel.on_late_event = on_late

    async def guest_side() -> None:
        await guest.requests.get()
        await guest.say(p.encode(p.ExecuteReply(id=1, status="ok")))
        await guest.say(p.encode(p.OutputChunk(id=1, name="stdout", text="late")))
        await guest.say(p.encode(p.Pong(id=1, agent_version="x")))

    task = asyncio.create_task(guest_side())
    events = [e async for e in channel.stream(p.Execute(id=1, code="x"))]
    await task
    await asyncio.wait_for(both_late.wait(), 5)
    assert [type(e) for e in events] == [p.ExecuteReply]
    assert late == [p.OutputChunk(id=1, name="stdout", text="late"),
                    p.Pong(id=1, agent_version="x")]
    await channel.close()


@pytest.mark.asyncio(loop_scope="function")
async def test_malformed_and_half_written_lines(guest: FakeGuest) -> None:
    channel, reply = await ping_in_flight(guest)
    await guest.say(b"this is not json\n")
    await guest.say(b'{"type": "pong", "id": 1, "agent_version": 3}\n')  # wrong type
    whole = p.encode(p.Pong(id=1, agent_version="ok"))
    await guest.say(whole[:10])
    await asyncio.sleep(0.05)
    assert not reply.done()
    await guest.say(whole[10:])
    assert isinstance(await reply, p.Pong)
    assert len(channel.protocol_errors) == 2
    unsolicited = channel.unsolicited.get_nowait()
    assert isinstance(unsolicited, p.AgentError) and unsolicited.error_type == "ProtocolError"
    await channel.close()


@pytest.mark.asyncio(loop_scope="function")
async def test_oversized_line_is_dropped_and_reading_goes_on(guest: FakeGuest) -> None:
    channel, reply = await ping_in_flight(guest, max_line=4096)
    big = p.encode(p.OutputChunk(id=1, name="stdout", text="x" * 100_000))
    for start in range(0, len(big), 1000):
        await guest.say(big[start:start + 1000])
    await guest.say(p.encode(p.Pong(id=1, agent_version="ok")))
    assert isinstance(await reply, p.Pong)
    assert any("longer than 4096" in e for e in channel.protocol_errors)
    await channel.close()


@pytest.mark.asyncio(loop_scope="function")
async def test_write_queue_is_bounded_and_fails_fast(guest: FakeGuest) -> None:
    channel = await connected(guest)
    with pytest.raises(ChannelBusy):
        for i in range(WRITE_QUEUE_DEPTH + 1):
            channel.send(p.Ping(id=i + 1))  # no await: the writer cannot drain meanwhile
    await channel.close()


@pytest.mark.asyncio(loop_scope="function")
async def test_guest_going_away_ends_streams(guest: FakeGuest) -> None:
    channel, reply = await ping_in_flight(guest)
    await guest.close()
    with pytest.raises(ChannelClosed):
        await reply
    await channel.close()


@pytest.mark.asyncio(loop_scope="function")
async def test_peer_must_be_the_expected_process(guest: FakeGuest) -> None:
    channel = DualPortChannel(guest.cmd_path, guest.evt_path, peer=os.getpid() + 100_000)
    with pytest.raises(ProtocolError, match="not QEMU"):
        await channel.connect()
    await channel.close()


@pytest.mark.asyncio(loop_scope="function")
async def test_what_the_guest_sends_under_no_request_is_kept_small(guest: FakeGuest) -> None:
    # Nothing reads these in the kernel: lines of many MB, kept, would fill the host's memory.
    channel, reply = await ping_in_flight(guest)
    big = p.encode(p.OutputChunk(id=0, name="stdout", text="x" * 2**20))
    for _ in range(40):
        await guest.say(big)
    await guest.say(p.encode(p.AgentError(id=0, error_type="E", message="small")))
    await guest.say(p.encode(p.Pong(id=1, agent_version="ok")))
    assert isinstance(await reply, p.Pong)
    kept = [channel.unsolicited.get_nowait() for _ in range(channel.unsolicited.qsize())]
    assert kept == [p.AgentError(id=0, error_type="E", message="small")]
    await channel.close()
