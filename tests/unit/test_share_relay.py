"""The guest's relay without a mount: a SOCK_SEQPACKET pair stands in for /dev/fuse, so
each write the relay makes to it is seen as one packet."""

import socket
import struct
import time

import pytest

from sandbox_kernel.guest import share_mount

pytestmark = pytest.mark.timeout(30)


def reply(unique: int, payload: bytes) -> bytes:
    return struct.pack("<IiQ", 16 + len(payload), 0, unique) + payload


def setup() -> tuple[socket.socket, socket.socket, share_mount.Relay]:
    fuse_kernel, fuse_dev = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    port_host, port_guest = socket.socketpair()
    relay = share_mount.Relay(fuse_dev.detach(), port_guest.detach())
    relay.start()
    return fuse_kernel, port_host, relay


def test_requests_go_to_the_port_and_torn_replies_reach_fuse_whole() -> None:
    fuse_kernel, port_host, relay = setup()
    try:
        fuse_kernel.send(b"R" * 100)
        fuse_kernel.send(b"S" * 150_000)
        got = b""
        while len(got) < 150_100:
            got += port_host.recv(1 << 20)
        assert got == b"R" * 100 + b"S" * 150_000
        replies = [reply(1, b"a"), reply(2, b"b" * 150_000), reply(3, b""), reply(4, b"d" * 5000)]
        stream = b"".join(replies)
        for i in range(0, len(stream), 4093):  # as a virtio port hands them out
            port_host.sendall(stream[i:i + 4093])
        fuse_kernel.settimeout(10)
        assert [fuse_kernel.recv(2 << 20) for _ in replies] == replies
    finally:
        relay.stop()
        port_host.close()
        fuse_kernel.close()
    assert not any(t.is_alive() for t in relay.threads)


@pytest.mark.parametrize("length", [0, 15, share_mount.MAX_IO + 4097])
def test_a_bad_reply_length_ends_the_relay(length: int) -> None:
    fuse_kernel, port_host, relay = setup()
    port_host.sendall(struct.pack("<IiQ", length, 0, 1) + b"x" * 20)
    deadline = time.monotonic() + 5
    while any(t.is_alive() for t in relay.threads) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not any(t.is_alive() for t in relay.threads)
    fuse_kernel.settimeout(1)
    assert fuse_kernel.recv(100) == b""  # the fuse fd was closed: the mount is aborted
    port_host.close()
    fuse_kernel.close()


def test_the_host_closing_the_port_ends_the_relay() -> None:
    fuse_kernel, port_host, relay = setup()
    port_host.close()
    for thread in relay.threads:
        thread.join(5)
    assert not any(t.is_alive() for t in relay.threads)
    fuse_kernel.close()


def test_a_held_relay_moves_nothing_until_released() -> None:
    fuse_kernel, fuse_dev = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    port_host, port_guest = socket.socketpair()
    relay = share_mount.Relay(fuse_dev.detach(), port_guest.detach(), held=True)
    relay.start()
    try:
        fuse_kernel.send(b"INIT" * 10)
        port_host.sendall(reply(7, b"early"))
        port_host.settimeout(0.3)
        with pytest.raises(TimeoutError):
            port_host.recv(100)
        fuse_kernel.settimeout(0.3)
        with pytest.raises(TimeoutError):
            fuse_kernel.recv(100)
        relay.release()
        port_host.settimeout(10)
        fuse_kernel.settimeout(10)
        assert port_host.recv(100) == b"INIT" * 10
        assert fuse_kernel.recv(100) == reply(7, b"early")
    finally:
        relay.stop()
        port_host.close()
        fuse_kernel.close()
    assert not any(t.is_alive() for t in relay.threads)


def test_a_held_relay_stops_without_being_released() -> None:
    fuse_kernel, fuse_dev = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    port_host, port_guest = socket.socketpair()
    relay = share_mount.Relay(fuse_dev.detach(), port_guest.detach(), held=True)
    relay.start()
    relay.stop()
    assert not any(t.is_alive() for t in relay.threads)
    fuse_kernel.settimeout(1)
    assert fuse_kernel.recv(100) == b""  # the fuse fd was closed
    port_host.close()
    fuse_kernel.close()
