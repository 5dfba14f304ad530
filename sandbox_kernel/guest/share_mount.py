"""The guest's side of the shared folder: mount a FUSE file system and relay raw bytes.

All FUSE protocol work happens on the host (the guest runs under emulation, ten times
slower); this only moves whole requests from /dev/fuse to the port and whole replies back.
Standard library only: it runs in the agent, as root.
"""

import ctypes
import errno
import logging
import os
import select
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

MAX_IO = 1 << 20  # the host's max_write and max_read (sandbox_kernel.share.fuse_wire)
_REQUEST_BUF = MAX_IO + 8192  # /dev/fuse wants room for a WRITE's headers and payload
_MAX_REPLY = MAX_IO + 4096
_OUT_HEADER = 16  # fuse_out_header: len, error, unique
_PORT_WRITE = 32 * 1024  # virtio_console takes at most this much per write()
_PORT_READ = 256 * 1024
_PAGE = 4096

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_BIND, MS_REC = 0x1, 0x2, 0x4, 0x1000, 0x4000
MNT_DETACH = 0x2

_libc = ctypes.CDLL(None, use_errno=True)


def _mount(source: str, target: str, fstype: str, flags: int, data: str) -> None:
    if _libc.mount(source.encode(), target.encode(), fstype.encode(), ctypes.c_ulong(flags),
                   data.encode()) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"mount {fstype} on {target}: {os.strerror(code)}")


def _option_safe(path: str) -> str:
    if any(c in path for c in ",:\\\n"):
        raise ValueError(f"{path!r} cannot go in mount options")
    return path


def open_fuse() -> int:
    return os.open("/dev/fuse", os.O_RDWR | os.O_CLOEXEC)


def mount_fuse(target: str, fuse_fd: int, default_permissions: bool = True,
               read_only: bool = False) -> None:
    """The kernel sends INIT at once; access waits until the relay carries the reply."""
    options = f"fd={fuse_fd},rootmode=40000,user_id=0,group_id=0,allow_other,max_read={MAX_IO}"
    if default_permissions:  # the kernel checks the modes the host shows, as on any disk
        options += ",default_permissions"
    flags = MS_NOSUID | MS_NODEV | (MS_RDONLY if read_only else 0)
    _mount("sandbox-share", target, "fuse", flags, options)


def mounted_device(target: str) -> str:
    """The "major:minor" of the file system mounted at ``target``, read without asking it (a
    FUSE mount answers nothing before its server's INIT reply)."""
    device = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == target:
                device = fields[2]  # the last one: what the path shows now
    if device is None:
        raise OSError(errno.ENOENT, f"nothing is mounted on {target}")
    return device


def set_readahead(device: str, kib: int = 1024) -> None:
    """FUSE's default read-ahead is 128 KiB; larger means fewer round trips to the host. Only
    after the INIT reply, which lowers it to what the server agreed."""
    with open(f"/sys/class/bdi/{device}/read_ahead_kb", "w") as f:
        f.write(str(kib))


def make_scratch(scratch: str, uid: int, gid: int, size: str = "50%") -> None:
    """A tmpfs at scratch for an overlay's writes (mount_overlay): they stay in the VM."""
    _mount("sandbox-share-rw", scratch, "tmpfs", MS_NOSUID | MS_NODEV, f"size={size},mode=0700")
    upper, work = f"{scratch}/upper", f"{scratch}/work"
    os.mkdir(upper, 0o755)
    os.mkdir(work, 0o700)
    os.chown(upper, uid, gid)  # the merged root is the upper folder: the user's to write


def mount_overlay(lower: str, scratch: str, target: str) -> None:
    """target shows lower, but takes writes into scratch (made by make_scratch)."""
    upper, work = f"{scratch}/upper", f"{scratch}/work"
    options = ",".join(f"{k}={_option_safe(v)}" for k, v in (
        ("lowerdir", lower), ("upperdir", upper), ("workdir", work)))
    _mount("sandbox-share", target, "overlay", MS_NOSUID | MS_NODEV, options)


def bind(source: str, target: str) -> None:
    """A writable subfolder of the FUSE mount, laid over the overlay's, so writes there
    reach the host."""
    _mount(source, target, "", MS_BIND, "")


def unmount(target: str, lazy: bool = True) -> None:
    if _libc.umount2(target.encode(), MNT_DETACH if lazy else 0) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"unmount {target}: {os.strerror(code)}")


class Relay:
    """Two threads: whole requests /dev/fuse -> port, whole replies port -> /dev/fuse.

    Start it after mount_fuse(): before the mount, /dev/fuse answers reads with EPERM.
    A ``held`` relay starts its threads and buffers but moves nothing until release(): a
    snapshot can hold it ready, for a host that connects to the port only after a restore.

    Owns fuse_fd and closes it when either direction ends, which aborts the mount's
    connection: processes then get ENOTCONN rather than hang. The port fd stays the
    caller's.
    """

    def __init__(self, fuse_fd: int, port_fd: int,
                 on_end: Callable[[], None] | None = None, held: bool = False) -> None:
        self._fuse, self._port, self._on_end = fuse_fd, port_fd, on_end
        for fd in (fuse_fd, port_fd):
            os.set_blocking(fd, False)
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._lock = threading.Lock()
        self._running = 2
        self._released = threading.Event()
        self._stopping = False
        if not held:
            self._released.set()
        self._threads = [threading.Thread(target=self._guard, args=(run,), daemon=True,
                                          name=f"share-{run.__name__}")
                         for run in (self._to_host, self._to_fuse)]

    @property
    def threads(self) -> tuple[threading.Thread, ...]:
        return tuple(self._threads)

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def release(self) -> None:
        self._released.set()

    def _until_released(self) -> bool:
        self._released.wait()
        return not self._stopping

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping = True
        self._released.set()
        self._wake()
        for thread in self._threads:
            if thread.is_alive() and thread is not threading.current_thread():
                thread.join(timeout)

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass  # already woken, or closed

    def _guard(self, run: Callable[[], None]) -> None:
        try:
            run()
        except Exception:
            log.exception("share relay failed")
        finally:
            self._wake()  # the other direction ends too
            with self._lock:
                self._running -= 1
                last = self._running == 0
            if last:
                self._finish()

    def _finish(self) -> None:
        for fd in (self._fuse, self._wake_r, self._wake_w):
            os.close(fd)
        if self._on_end is not None:
            self._on_end()

    def _wait(self, fd: int, event: int) -> bool:
        """Until fd is ready for event; False once the relay is stopping."""
        poller = select.poll()
        poller.register(fd, event)
        poller.register(self._wake_r, select.POLLIN)
        while True:
            ready = dict(poller.poll())
            if self._wake_r in ready:
                return False
            if fd in ready:
                return True

    def _write_port(self, data: memoryview) -> bool:
        while data:
            if not self._wait(self._port, select.POLLOUT):
                return False
            try:
                data = data[os.write(self._port, data[:_PORT_WRITE]):]
            except BlockingIOError:
                continue
        return True

    def _to_host(self) -> None:
        buf = bytearray(_REQUEST_BUF)
        view = memoryview(buf)
        if not self._until_released():
            return
        while self._wait(self._fuse, select.POLLIN):
            try:
                size = os.readv(self._fuse, [buf])  # one whole request
            except BlockingIOError:
                continue
            except OSError as e:
                if e.errno == errno.ENOENT:  # a request interrupted before we read it
                    continue
                if e.errno != errno.ENODEV:  # ENODEV: unmounted
                    log.warning("share relay: reading /dev/fuse: %s", e)
                return
            if size == 0 or not self._write_port(view[:size]):
                return

    def _to_fuse(self) -> None:
        buf = bytearray(_MAX_REPLY + _PORT_READ)
        view = memoryview(buf)
        # A virtio-serial port hands out one page-sized buffer per read(); with an iovec of
        # pages, one readv() takes as many as have arrived, instead of a syscall (and a
        # round of emulated Python) per page.
        scratch = bytearray(_PORT_READ)
        pages = [memoryview(scratch)[at:at + _PAGE] for at in range(0, _PORT_READ, _PAGE)]
        end = 0
        if not self._until_released():
            return
        while self._wait(self._port, select.POLLIN):
            try:
                received = os.readv(self._port, pages)
            except BlockingIOError:
                continue
            view[end:end + received] = memoryview(scratch)[:received]
            if received == 0:
                log.warning("share relay: the host closed the port")
                return
            end += received
            start = self._write_replies(view, end)
            if start < 0:
                return
            if start:
                buf[:end - start] = bytes(view[start:end])
                end -= start

    def _write_replies(self, view: memoryview, end: int) -> int:
        """Writes each whole reply in view[:end]; returns where the rest starts, or -1."""
        start = 0
        while end - start >= _OUT_HEADER:
            length = int.from_bytes(view[start:start + 4], "little")
            if not _OUT_HEADER <= length <= _MAX_REPLY:
                log.error("share relay: reply of %d bytes from the host", length)
                return -1
            if end - start < length:
                break
            try:
                os.write(self._fuse, view[start:start + length])  # exactly one reply
            except OSError as e:
                if e.errno == errno.ENODEV:
                    return -1
                if e.errno != errno.ENOENT:  # ENOENT: the request was interrupted
                    log.warning("share relay: reply refused: %s", e)
            start += length
        return start
