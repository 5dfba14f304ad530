"""The socket side: self-delimited requests in, replies out, in a thread that never dies
loudly and stops when told."""

import socket
import threading
import time

import pytest

from sandbox_kernel.share import fuse_wire as w
from sandbox_kernel.share.transport import ShareTransport

Pair = tuple[socket.socket, socket.socket]


class Echo:
    """Replies with the request's unique and length; FORGET gets no reply."""

    def __init__(self) -> None:
        self.closed = threading.Event()
        self.seen: list[int] = []

    def handle(self, request: bytes) -> bytes | None:
        header = w.parse_header(request)
        self.seen.append(len(request))
        if header.opcode == w.FORGET:
            return None
        if header.opcode == 999:
            raise RuntimeError("a bug in the server")
        return w.reply(header.unique, len(request).to_bytes(4, "little"))

    def close(self) -> None:
        self.closed.set()


def request(unique: int, opcode: int = w.GETATTR, body: bytes = b"") -> bytes:
    return w.IN_HEADER.pack(40 + len(body), opcode, unique, 1, 0, 0, 0, 0) + body


def read_replies(sock: socket.socket, count: int) -> list[tuple[int, bytes]]:
    data, replies = b"", list[tuple[int, bytes]]()
    while len(replies) < count:
        while len(data) < 16 or len(data) < int.from_bytes(data[:4], "little"):
            chunk = sock.recv(65536)
            assert chunk, "connection closed"
            data += chunk
        length, _, unique = w.OUT_HEADER.unpack_from(data)
        replies.append((unique, data[16:length]))
        data = data[length:]
    assert data == b""
    return replies


@pytest.fixture
def pair() -> Pair:
    return socket.socketpair()


@pytest.mark.timeout(20)
def test_requests_split_and_merged_arbitrarily_are_all_answered(pair: Pair) -> None:
    host, guest = pair
    server = Echo()
    transport = ShareTransport(host, server)
    transport.start()
    big = request(1, body=b"x" * w.MAX_WRITE)
    stream = big + request(2, w.FORGET, b"\1" * 8) + request(3) + request(4)
    for i in range(0, len(stream), 7777):  # torn at odd places
        guest.sendall(stream[i:i + 7777])
    assert read_replies(guest, 3) == [(1, len(big).to_bytes(4, "little")),
                                      (3, b"(\0\0\0"), (4, b"(\0\0\0")]
    transport.stop()
    assert not transport.thread.is_alive() and server.closed.is_set()
    guest.close()


@pytest.mark.timeout(20)
@pytest.mark.parametrize("length", [0, 39, w.MAX_REQUEST + 1, 2**32 - 1])
def test_a_bad_length_closes_the_connection(pair: Pair, length: int) -> None:
    host, guest = pair
    server = Echo()
    transport = ShareTransport(host, server)
    transport.start()
    guest.sendall(length.to_bytes(4, "little") + bytes(60))
    transport.thread.join(5)
    assert not transport.thread.is_alive() and server.closed.is_set()
    assert guest.recv(10) == b"" and server.seen == []
    guest.close()


@pytest.mark.timeout(20)
def test_a_server_bug_or_a_vanished_guest_ends_the_thread_quietly(pair: Pair) -> None:
    host, guest = pair
    server = Echo()
    transport = ShareTransport(host, server)
    transport.start()
    guest.sendall(request(5, 999))
    transport.thread.join(5)
    assert not transport.thread.is_alive() and server.closed.is_set()
    guest.close()


@pytest.mark.timeout(20)
def test_stop_ends_a_blocked_thread_promptly(pair: Pair) -> None:
    host, guest = pair
    transport = ShareTransport(host, Echo())
    transport.start()
    guest.sendall(request(1)[:20])  # half a request: the thread waits for the rest
    time.sleep(0.1)
    started = time.monotonic()
    transport.stop()
    assert not transport.thread.is_alive() and time.monotonic() - started < 2
    guest.close()
