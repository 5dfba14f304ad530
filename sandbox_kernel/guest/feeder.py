"""Requests to the worker, written into its request pipe by a thread of their own. The agent
is PID 1 and must go on answering pings and interrupts whatever the worker does: a cell that
runs and never reads its pipe, with a comm message of many MB waiting, would otherwise block
the agent's command loop in its write. Standard library only."""

import os
import threading
from collections import deque


class RequestFeeder:
    """Writes queued lines to ``fd`` in order; holds at most ``limit`` bytes that the worker
    has not taken (one line whatever its size, so that any line the host may send gets in)."""

    def __init__(self, fd: int, limit: int) -> None:
        self._fd = fd
        self._limit = limit
        self._lines: deque[bytes] = deque()
        self._held = 0  # the bytes queued, and those of the line being written
        self._closed = False
        self._wake = threading.Condition()
        threading.Thread(target=self._write_all, daemon=True, name="request-feeder").start()

    def put(self, line: bytes) -> bool:
        """Queues ``line``; False, and drops it, when the worker is that far behind."""
        with self._wake:
            if self._held and self._held + len(line) > self._limit:
                return False
            if not self._closed:  # else the worker is gone, and its end answers for the line
                self._lines.append(line)
                self._held += len(line)
                self._wake.notify()
            return True

    def close(self) -> None:
        """Drops what is queued. The thread closes the pipe once its write has returned: closed
        here, its number could be reused for the next worker's pipe while it still writes."""
        with self._wake:
            self._closed = True
            self._lines.clear()
            self._wake.notify()

    def _write_all(self) -> None:
        try:
            while (line := self._next()) is not None:
                view = memoryview(line)
                while view:
                    view = view[os.write(self._fd, view):]
                with self._wake:
                    self._held -= len(line)
        except OSError:
            pass  # the worker is dying (a broken pipe): its end answers for what was queued
        finally:
            os.close(self._fd)

    def _next(self) -> bytes | None:
        with self._wake:
            while not self._lines and not self._closed:
                self._wake.wait()
            return None if self._closed else self._lines.popleft()
