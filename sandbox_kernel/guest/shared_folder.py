"""The notebook's folder in the VM, mounted by the agent (root) when the host asks: the host's
FUSE server on the share port, read-only, under an overlay that keeps the VM's own writes in
memory; each writable subfolder is bound from the FUSE mount through the overlay, so that its
writes reach the host. The wheelhouse, a folder of wheels for pip, is mounted the same way from
its own port, read-only, with no overlay, and bound at /opt/wheelhouse. Standard library only.

Both FUSE mounts are made, and their relays started but held, when the agent starts, so that a
snapshot holds them: a restored VM's MountShare then only releases a relay and lays the
overlay (the mount and the relay's start took some 100 ms of each start under TCG). The FUSE
connection's INIT waits in /dev/fuse until the relay is released, and is answered by the
server of the kernel that restored the VM."""

import contextlib
import logging
import os
from dataclasses import dataclass, replace

from sandbox_kernel.constants import WHEELHOUSE_PATH
from sandbox_kernel.guest import share_mount
from sandbox_kernel.guest.spawn import USER_HOME, USER_UID

log = logging.getLogger(__name__)

_PRIVATE = "/run/sandbox-share"  # root's only: the user reaches the folders through mounts
_FUSE = f"{_PRIVATE}/folder"
_WHEELS = f"{_PRIVATE}/wheels"
_SCRATCH = f"{_PRIVATE}/scratch"


@dataclass(frozen=True)
class FuseMount:
    """A FUSE mount at ``target`` whose relay carries its traffic once released."""

    target: str
    device: str  # for its read-ahead
    relay: share_mount.Relay
    scratch: bool = False  # the share's: the overlay's tmpfs is made too

    def release(self) -> None:
        """Lets the relay carry the INIT request, waiting in /dev/fuse, and all after it."""
        self.relay.release()

    def raise_readahead(self) -> None:
        """After the INIT reply, which sets the read-ahead the server agreed."""
        os.stat(self.target)  # waits for that reply, if nothing else has
        share_mount.set_readahead(self.device)

    def abandon(self) -> None:
        with contextlib.suppress(OSError):
            share_mount.unmount(self.target)
        self.relay.stop()


def guest_path(name: str) -> str:
    return f"{USER_HOME}/{name}"


def _fuse(port: str, target: str, read_only: bool = False) -> FuseMount:
    """The host's FUSE server on ``port``, mounted at ``target``, its relay started, held."""
    port_fd = os.open(port, os.O_RDWR | os.O_CLOEXEC)
    fuse_fd = share_mount.open_fuse()
    try:
        share_mount.mount_fuse(target, fuse_fd, read_only=read_only)
    except BaseException:
        os.close(fuse_fd)
        os.close(port_fd)
        raise
    relay = share_mount.Relay(fuse_fd, port_fd, on_end=lambda: os.close(port_fd), held=True)
    relay.start()
    mount = FuseMount(target, "", relay)
    try:
        return FuseMount(target, share_mount.mounted_device(target), relay)
    except BaseException:
        mount.abandon()
        raise


def premount(share_port: str | None, wheelhouse_port: str | None
             ) -> tuple[FuseMount | None, FuseMount | None]:
    """Both FUSE mounts, held; one that fails is made again when the host asks for it.
    The mount points are made here, once: a stat of one blocks until its INIT is answered."""
    try:
        for folder in (_PRIVATE, _FUSE, _WHEELS, _SCRATCH):
            os.makedirs(folder, mode=0o700, exist_ok=True)
    except OSError as exc:
        log.warning("could not make the mount points: %s", exc)
        return None, None
    made: list[FuseMount | None] = []
    for port, target, read_only in ((share_port, _FUSE, False),
                                    (wheelhouse_port, _WHEELS, True)):
        try:
            made.append(_fuse(port, target, read_only) if port else None)
        except Exception as exc:
            log.warning("could not mount %s ahead: %s", target, exc)
            made.append(None)
    share = made[0]
    if share is not None:
        try:
            share_mount.make_scratch(_SCRATCH, USER_UID, USER_UID)
            share = replace(share, scratch=True)
        except OSError as exc:
            log.warning("could not make the overlay's scratch ahead: %s", exc)
    return share, made[1]


def mount(port: str, name: str, writable: list[str], ahead: FuseMount | None) -> FuseMount:
    """Mounts the folder at ``guest_path(name)``; the relay carries its traffic from now on.
    Its read-ahead is the caller's to raise (``raise_readahead``), once it has answered."""
    target = guest_path(name)
    os.makedirs(target, exist_ok=True)
    os.chown(target, USER_UID, USER_UID)
    fuse = ahead or _fuse(port, _FUSE)
    try:
        if not fuse.scratch:
            share_mount.make_scratch(_SCRATCH, USER_UID, USER_UID)
        fuse.release()
        share_mount.mount_overlay(_FUSE, _SCRATCH, target)  # waits for the INIT reply
        for sub in writable:
            share_mount.bind(f"{_FUSE}/{sub}", f"{target}/{sub}")
    except BaseException:
        for mounted in (target, _SCRATCH):
            with contextlib.suppress(OSError):
                share_mount.unmount(mounted)
        fuse.abandon()
        raise
    return fuse


def mount_wheelhouse(port: str, ahead: FuseMount | None) -> FuseMount:
    """Mounts the wheelhouse at /opt/wheelhouse (a folder in every image), read-only."""
    fuse = ahead or _fuse(port, _WHEELS, read_only=True)
    try:
        fuse.release()
        share_mount.bind(_WHEELS, WHEELHOUSE_PATH)  # the FUSE mount is read-only: so is this
    except BaseException:
        with contextlib.suppress(OSError):
            share_mount.unmount(WHEELHOUSE_PATH)
        fuse.abandon()
        raise
    return fuse


def raise_readahead(*mounted: FuseMount) -> None:
    """1 MB of read-ahead for the mounts made: fewer round trips to the host on big reads.
    Off the start's path (a sysfs write takes some 10 ms in a freshly restored VM)."""
    for mount in mounted:
        try:
            mount.raise_readahead()
        except OSError as exc:
            log.warning("could not raise the read-ahead of %s: %s", mount.target, exc)
