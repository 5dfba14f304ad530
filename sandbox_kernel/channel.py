"""The host side of the guest channel: a command port (host->guest) and an event port
(guest->host), each a Unix socket that QEMU serves for one virtio-serial port.

Everything read from the guest is untrusted: lines are bounded, validated as protocol events and
routed by request id; anything else is counted as a protocol error and never raised in the
reader task.
"""

import asyncio
import contextlib
import itertools
import logging
import os
import socket
import struct
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from sandbox_kernel import protocol as p
from sandbox_kernel.errors import ProtocolError, SandboxError
from sandbox_kernel.lines import LineSplitter

log = logging.getLogger(__name__)

WRITE_QUEUE_DEPTH = 256
EVENT_QUEUE_DEPTH = 1024
# Events of no request (a hello, the agent's errors) are kept for whoever looks, few and
# small: a cell can write lines of many MB with id 0, and nothing reads this queue for ever.
UNSOLICITED_DEPTH = 64
UNSOLICITED_LINE = 64 * 1024
_READ_SIZE = 1 << 20


class ChannelClosed(SandboxError):
    """The guest side went away (the VM stopped or died)."""


class RequestTooLarge(SandboxError):
    """A request longer than a line may be (a cell of many megabytes)."""


class ChannelBusy(SandboxError):
    """The write queue is full: the guest is not reading its command port."""


def peer_pid(sock: socket.socket) -> int:
    pid, _uid, _gid = struct.unpack("3i", sock.getsockopt(
        socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
    return int(pid)


class DualPortChannel:
    def __init__(self, cmd_path: Path, evt_path: Path, peer: int | None = None,
                 max_line: int = p.MAX_LINE_BYTES, first_id: int = 1) -> None:
        self.cmd_path = cmd_path
        self.evt_path = evt_path
        self.expected_peer = peer
        self.max_line = max_line
        self.protocol_errors: list[str] = []
        self.unsolicited: asyncio.Queue[p.Event] = asyncio.Queue(maxsize=UNSOLICITED_DEPTH)
        self._ids = itertools.count(first_id)
        # Each request waiting on its events, with the event types that may end it.
        self._streams: dict[int, tuple[asyncio.Queue[p.Event | SandboxError],
                                       frozenset[str]]] = {}
        self._outbox: asyncio.Queue[bytes] = asyncio.Queue(maxsize=WRITE_QUEUE_DEPTH)
        self._tasks: list[asyncio.Task[None]] = []
        self._writers: list[asyncio.StreamWriter] = []
        self._closed: SandboxError | None = None
        # Gets the events of requests already answered: output from a thread that a cell
        # started, which ipykernel shows under that cell.
        self.on_late_event: Callable[[p.Event], None] | None = None
        # debugpy's messages, whatever their id (they answer no request of the channel's).
        self.on_dap: Callable[[Any], None] | None = None

    # --- connection -------------------------------------------------------------------------
    async def _open(self, path: Path, sock: socket.socket | None
                    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if sock is None:
            reader, writer = await asyncio.open_unix_connection(path, limit=_READ_SIZE)
        else:
            reader, writer = await asyncio.open_unix_connection(sock=sock, limit=_READ_SIZE)
        sock = writer.get_extra_info("socket")
        peer = peer_pid(sock)
        if self.expected_peer is not None and peer != self.expected_peer:
            writer.close()
            if peer == 0:  # no process behind it any more: QEMU is going, or gone
                raise ConnectionRefusedError(f"{path} has no server")
            raise ProtocolError(f"{path} is served by pid {peer}, not QEMU "
                                f"(pid {self.expected_peer})")
        self._writers.append(writer)
        return reader, writer

    async def connect(self, sockets: tuple[socket.socket, socket.socket] | None = None) -> None:
        """Connects to the ports, or takes ``sockets`` already connected to them (a channel
        handed over from another event loop by ``detach``)."""
        cmd_sock, evt_sock = sockets or (None, None)
        _, cmd_writer = await self._open(self.cmd_path, cmd_sock)
        evt_reader, _ = await self._open(self.evt_path, evt_sock)
        self._tasks = [
            asyncio.create_task(self._write_loop(cmd_writer), name="channel-writer"),
            asyncio.create_task(self._read_loop(evt_reader), name="channel-reader"),
        ]

    async def detach(self) -> tuple[socket.socket, socket.socket, int]:
        """Copies of the two connected sockets and the next request id, for a channel on
        another event loop; then closes this one. Call it with no request in flight."""
        cmd, evt = (socket.socket(fileno=os.dup(w.get_extra_info("socket").fileno()))
                    for w in self._writers)
        await self.close()
        return cmd, evt, self.next_id()

    async def close(self) -> None:
        self._fail(ChannelClosed("the channel was closed"))
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for writer in self._writers:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        self._tasks.clear()
        self._writers.clear()

    # --- loops ------------------------------------------------------------------------------
    async def _write_loop(self, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                writer.write(await self._outbox.get())
                await writer.drain()
        except (ConnectionError, OSError) as exc:
            self._fail(ChannelClosed(f"command port closed: {exc}"))

    async def _read_loop(self, reader: asyncio.StreamReader) -> None:
        lines = LineSplitter(self.max_line)
        try:
            while data := await reader.read(_READ_SIZE):
                for line in lines.feed(data):
                    await self._dispatch(None if line is None else bytes(line))
        except (ConnectionError, OSError) as exc:
            self._fail(ChannelClosed(f"event port failed: {exc}"))
            return
        self._fail(ChannelClosed("the guest closed the event port"))

    async def _dispatch(self, line: bytes | None) -> None:
        if line is None:
            self._protocol_error(f"a line longer than {self.max_line} bytes was dropped")
            return
        if not line.strip():
            return
        try:
            event = p.parse_event(line)
        except p.MessageError as exc:
            self._protocol_error(f"invalid message from the guest: {str(exc)[:300]}"
                                 f" in {line[:120]!r}")
            return
        if isinstance(event, p.DapMessage):
            if self.on_dap is not None:
                self.on_dap(event.message)
            return
        waiting = self._streams.get(event.id)
        if waiting is not None:
            queue, ends = waiting
            if isinstance(event, p.FINAL_EVENTS):
                if event.type not in ends:  # a forged or misrouted answer: not this one's end
                    self._protocol_error(f"a {event.type} cannot answer request {event.id}")
                    return
                del self._streams[event.id]  # what comes after it is late
            await queue.put(event)  # bounded: a flood from the guest waits here
        elif event.id == 0:
            if len(line) <= UNSOLICITED_LINE:
                with contextlib.suppress(asyncio.QueueFull):
                    self.unsolicited.put_nowait(event)
        elif self.on_late_event is not None:
            self.on_late_event(event)
        else:
            log.debug("dropping event for finished request %s", event.id)

    def _protocol_error(self, message: str) -> None:
        log.warning("protocol error: %s", message)
        self.protocol_errors.append(message)
        del self.protocol_errors[:-100]
        with contextlib.suppress(asyncio.QueueFull):
            self.unsolicited.put_nowait(
                p.AgentError(id=0, error_type="ProtocolError", message=message))

    def abandon(self, error: SandboxError) -> None:
        """Gives up on the guest: every request waiting, and every one after, ends with
        ``error``. (``close`` then ends the connection.)"""
        self._fail(error)

    def _fail(self, error: SandboxError) -> None:
        if self._closed is None:
            self._closed = error
        for queue, _ in self._streams.values():
            # Room is made so that the consumer always learns of the end.
            while queue.full():
                queue.get_nowait()
            queue.put_nowait(error)

    # --- requests ---------------------------------------------------------------------------
    def next_id(self) -> int:
        return next(self._ids)

    def send(self, request: p.Message) -> None:
        """Queues a request without waiting; fails fast when the guest is not keeping up."""
        if self._closed is not None:
            raise self._closed
        line = p.encode(request)
        if len(line) > self.max_line:  # the agent would drop it, and nobody would answer
            raise RequestTooLarge(
                f"the {type(request).__name__.lower()} request is {len(line) / 2**20:.1f} MB; "
                f"the sandbox takes at most {self.max_line // 2**20} MB at a time")
        try:
            self._outbox.put_nowait(line)
        except asyncio.QueueFull:
            raise ChannelBusy("the guest is not reading its command port") from None

    async def stream(self, request: p.Message) -> AsyncIterator[p.Event]:
        """Sends ``request`` and yields its events; ends after the final one."""
        queue = self._register(request.id, str(getattr(request, "type", "")))
        try:
            self.send(request)
        except BaseException:
            self._streams.pop(request.id, None)
            raise
        async for event in self._events(request.id, queue):
            yield event

    def expect(self, request_id: int, request_type: str) -> AsyncIterator[p.Event]:
        """The events of a request written to the port before the channel took it (a
        restore's first reseed: vm/port_pairs.py). Call it before ``connect``, so that none
        is missed."""
        return self._events(request_id, self._register(request_id, request_type))

    def _register(self, request_id: int, request_type: str
                  ) -> asyncio.Queue[p.Event | SandboxError]:
        queue: asyncio.Queue[p.Event | SandboxError] = asyncio.Queue(maxsize=EVENT_QUEUE_DEPTH)
        self._streams[request_id] = (queue, p.ends(request_type))
        return queue

    async def _events(self, request_id: int, queue: asyncio.Queue[p.Event | SandboxError]
                      ) -> AsyncIterator[p.Event]:
        try:
            while True:
                item = await queue.get()
                if isinstance(item, SandboxError):
                    raise item
                yield item
                if isinstance(item, p.FINAL_EVENTS):
                    return
        finally:
            self._streams.pop(request_id, None)

    async def request(self, request: p.Message) -> p.Event:
        """Sends ``request`` and returns its final event (others are dropped)."""
        return await final_event(self.stream(request))

    @property
    def closed(self) -> SandboxError | None:
        return self._closed


async def final_event(events: AsyncIterator[p.Event]) -> p.Event:
    """The event that ends a request's ``events`` (others are dropped)."""
    async for event in events:
        if isinstance(event, p.FINAL_EVENTS):
            return event
    raise ChannelClosed("no reply")  # pragma: no cover - a stream always ends on a final
