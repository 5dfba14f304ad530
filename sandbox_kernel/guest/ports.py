"""The agent's ends of the two virtio-serial ports, robust to the host closing and reopening."""

import fcntl
import os
import select
import signal
import threading
import time
from collections.abc import Callable, Iterator

from sandbox_kernel.lines import LineSplitter

_PORTS = "/sys/class/virtio-ports"
_MAX_WRITE = 32 * 1024  # virtio_console takes at most this much per write()


def find_port(name: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        for entry in os.listdir(_PORTS) if os.path.isdir(_PORTS) else []:
            try:
                with open(f"{_PORTS}/{entry}/name") as fh:
                    if fh.read().strip() == name:
                        return f"/dev/{entry}"
            except OSError:
                continue
        if time.monotonic() > deadline:
            raise RuntimeError(f"virtio port {name!r} not found")
        time.sleep(0.01)


def port_if_any(name: str) -> str | None:
    """The port's device if the VM has it now; no wait."""
    try:
        return find_port(name, timeout=0.0)
    except RuntimeError:
        return None


def _notify_on_change(fd: int) -> None:
    # virtio_console raises SIGIO when the host side connects or disconnects.
    fcntl.fcntl(fd, fcntl.F_SETOWN, os.getpid())
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_ASYNC)


class CommandPort:
    """Reads host->guest lines. Call from the thread that has SIGIO blocked."""

    def __init__(self, path: str, max_line: int) -> None:
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self.max_line = max_line
        _notify_on_change(self.fd)

    def _wait_for_host(self) -> None:
        # With the host gone, read() gives EOF and poll() POLLHUP at once: sleep on SIGIO
        # instead of spinning, with a timeout in case a signal was missed.
        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        while True:
            ready = poller.poll(0)
            if ready and not ready[0][1] & select.POLLHUP:
                return
            signal.sigtimedwait({signal.SIGIO}, 0.5)

    def lines(self, on_reconnect: Callable[[], None]) -> Iterator[memoryview | None]:
        """Lines, newline included; None for one over ``max_line``, which is skipped."""
        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        splitter = LineSplitter(self.max_line)
        while True:
            events = poller.poll()
            flags = events[0][1] if events else 0
            try:
                data = os.read(self.fd, 1 << 20)
            except BlockingIOError:
                data = None
            if data:
                yield from splitter.feed(data)
                continue
            if data == b"" or flags & select.POLLHUP:
                splitter = LineSplitter(self.max_line)  # a half line of the old connection
                self._wait_for_host()
                on_reconnect()


class EventPort:
    """Writes guest->host lines from any thread, whole lines at a time."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_WRONLY)
        self._lock = threading.Lock()
        _notify_on_change(self.fd)

    def send(self, line: bytes | memoryview) -> None:
        with self._lock:
            self._write(line)

    def send_json(self, payload: bytes) -> None:
        """``payload`` and its newline in as few writes as they fit in (each write is a
        trip through the virtio port), copying at most the last write's worth to append
        the newline."""
        tail = (len(payload) + 1) % _MAX_WRITE or _MAX_WRITE
        cut = len(payload) + 1 - tail
        with self._lock:
            self._write(memoryview(payload)[:cut])
            self._write(payload[cut:] + b"\n")

    def _write(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.fd, view[:_MAX_WRITE])
            except InterruptedError:
                continue
            view = view[n:]

