"""The shared folder mounted on this host, through its own /dev/fuse: the guest's relay and
the host's server joined by a socketpair. For tests and benchmarks (needs root)."""

import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sandbox_kernel.guest import share_mount
from sandbox_kernel.share.server import FuseServer
from sandbox_kernel.share.settings import ShareSettings
from sandbox_kernel.share.transport import ShareTransport


def unavailable() -> str | None:
    """Why a loopback mount cannot be made here, or None."""
    if os.geteuid() != 0:
        return "mounting needs root"
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse"
    return None


@dataclass
class Loopback:
    server: FuseServer
    transport: ShareTransport
    relay: share_mount.Relay


@contextmanager
def loopback_mount(settings: ShareSettings, mountpoint: str,
                   notify: Callable[[str], None], held: bool = False) -> Iterator[Loopback]:
    """``held``: the relay waits for the caller's release(), as the agent's made ahead do."""
    server = FuseServer(settings, notify)
    host, guest = socket.socketpair()
    transport = ShareTransport(host, server)
    transport.start()
    fuse_fd = share_mount.open_fuse()
    try:
        share_mount.mount_fuse(mountpoint, fuse_fd)
    except BaseException:
        os.close(fuse_fd)
        transport.stop()
        guest.close()
        raise
    relay = share_mount.Relay(fuse_fd, guest.fileno(), held=held)  # after the mount: see Relay
    relay.start()
    try:
        yield Loopback(server, transport, relay)
    finally:
        share_mount.unmount(mountpoint, lazy=True)  # lazy: a process inside cannot keep it
        relay.stop()  # closes the fuse fd, which aborts anything still waiting
        transport.stop()
        guest.close()
