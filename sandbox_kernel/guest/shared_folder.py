"""The notebook's folder in the VM, mounted by the agent (root) when the host asks: the host's
FUSE server on the share port, read-only, under an overlay that keeps the VM's own writes in
memory; each writable subfolder is bound from the FUSE mount through the overlay, so that its
writes reach the host. The wheelhouse, a folder of wheels for pip, is mounted the same way from
its own port, read-only, with no overlay. Standard library only."""

import contextlib
import os

from sandbox_kernel.constants import WHEELHOUSE_PATH
from sandbox_kernel.guest import share_mount
from sandbox_kernel.guest.spawn import USER_HOME, USER_UID

_PRIVATE = "/run/sandbox-share"  # root's only: the user reaches the folder through the overlay
_FUSE = f"{_PRIVATE}/folder"
_SCRATCH = f"{_PRIVATE}/scratch"


def guest_path(name: str) -> str:
    return f"{USER_HOME}/{name}"


def _fuse(port: str, target: str, read_only: bool = False) -> share_mount.Relay:
    """The host's FUSE server on ``port``, mounted at ``target``, its relay running."""
    port_fd = os.open(port, os.O_RDWR | os.O_CLOEXEC)
    fuse_fd = share_mount.open_fuse()
    try:
        share_mount.mount_fuse(target, fuse_fd, read_only=read_only)
    except BaseException:
        os.close(fuse_fd)
        os.close(port_fd)
        raise
    relay = share_mount.Relay(fuse_fd, port_fd, on_end=lambda: os.close(port_fd))
    relay.start()  # the first access after this waits for the host's answer to INIT
    return relay


def prepare() -> None:
    """The mount's private folders, made ahead of it."""
    for folder in (_PRIVATE, _FUSE, _SCRATCH):
        os.makedirs(folder, mode=0o700, exist_ok=True)


def mount(port: str, name: str, writable: list[str]) -> share_mount.Relay:
    """Mounts the folder at ``guest_path(name)``; the relay carries its traffic from now on."""
    target = guest_path(name)
    prepare()
    os.makedirs(target, exist_ok=True)
    os.chown(target, USER_UID, USER_UID)
    relay = _fuse(port, _FUSE)
    try:
        share_mount.set_readahead(_FUSE)
        share_mount.mount_overlay(_FUSE, _SCRATCH, target, USER_UID, USER_UID)
        for sub in writable:
            share_mount.bind(f"{_FUSE}/{sub}", f"{target}/{sub}")
    except BaseException:
        for mounted in (target, _SCRATCH, _FUSE):
            with contextlib.suppress(OSError):
                share_mount.unmount(mounted)
        relay.stop()
        raise
    return relay


def mount_wheelhouse(port: str) -> share_mount.Relay:
    """Mounts the wheelhouse at /opt/wheelhouse (a folder in every image), read-only."""
    relay = _fuse(port, WHEELHOUSE_PATH, read_only=True)
    try:
        share_mount.set_readahead(WHEELHOUSE_PATH)
    except BaseException:
        with contextlib.suppress(OSError):
            share_mount.unmount(WHEELHOUSE_PATH)
        relay.stop()
        raise
    return relay
