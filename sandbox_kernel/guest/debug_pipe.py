"""The agent's end of the worker's debug pipe, and the loopback debugpy's adapter listens on.

The agent is PID 1 and answers pings whatever the worker does, so it never writes to the
worker itself: a thread does, from a bounded queue, on a pipe of its own per worker.
"""

import contextlib
import fcntl
import os
import queue
import socket
import struct
import threading

_QUEUED = 256
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1


class DebugPipe:
    """Lines for the worker's debug thread; ``put`` never blocks."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._lines: queue.Queue[bytes | None] = queue.Queue(_QUEUED)
        self._thread: threading.Thread | None = None

    def put(self, line: bytes) -> bool:
        """False when the worker is not reading (the queue is full) or has gone."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._write, daemon=True,
                                            name="debug-pipe")
            self._thread.start()
        try:
            self._lines.put_nowait(line)
        except queue.Full:
            return False
        return True

    def close(self) -> None:
        """The worker has ended: a write blocked on its pipe fails, and the thread ends."""
        if self._thread is None:
            os.close(self._fd)
            return
        with contextlib.suppress(queue.Full):
            self._lines.put_nowait(None)

    def _write(self) -> None:
        try:
            while (line := self._lines.get()) is not None:
                view = memoryview(line)
                while view:
                    view = view[os.write(self._fd, view):]
        except OSError:
            pass  # the worker is gone; its requests' senders time out
        finally:
            os.close(self._fd)


def loopback_up() -> None:
    """Brings ``lo`` up (the kernel gives it 127.0.0.1): the VM has no other network."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        ifreq = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock, _SIOCGIFFLAGS, ifreq))[1]
        if not flags & _IFF_UP:
            fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | _IFF_UP))
