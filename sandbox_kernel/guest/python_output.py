"""The worker's sys.stdout and sys.stderr: their text goes out as ``output`` events on the
worker's message pipe, the pipe that carries every other event, so that the host gets output,
displays, errors and the reply in the order the cell made them. (Output written below Python,
to file descriptors 1 and 2, takes the agent's own pipes and keeps an order only roughly.)"""

import codecs
import io
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from sandbox_kernel.guest import wire
from sandbox_kernel.guest.fd_output import FLUSH_BYTES as CHUNK_BYTES  # as for fd-level output

_FLUSH_AFTER_S = 0.05
_IDLE_FLUSH_S = 0.2


class EventPipe(Protocol):
    current_id: int

    def write_line(self, line: bytes) -> None: ...


class OutputEvents(io.RawIOBase):
    """The bottom of a text stream: each buffer's worth becomes output events."""

    def __init__(self, name: str, fd: int, pipe: EventPipe) -> None:
        self._name = name
        self._fd = fd
        self._pipe = pipe
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd  # for code that writes below Python, such as a subprocess

    def write(self, data: Any) -> int:
        text = self._decoder.decode(data)
        for start in range(0, len(text), CHUNK_BYTES):
            self._pipe.write_line(wire.encode("output", self._pipe.current_id, name=self._name,
                                              text=text[start:start + CHUNK_BYTES]))
        return len(data)


def open_output(name: str, fd: int, pipe: EventPipe) -> io.TextIOWrapper:
    """A C-level buffered text stream: under TCG a Python-level write() per print() costs
    about twice as much. ``OutputFlusher`` pushes it out while a cell runs."""
    raw = OutputEvents(name, fd, pipe)
    return io.TextIOWrapper(io.BufferedWriter(raw, CHUNK_BYTES), encoding="utf-8",
                            errors="surrogateescape")


def flush_outputs() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass  # a user replaced or closed the stream; nothing of ours to push


class OutputFlusher:
    """Calls ``tick`` every 50 ms while a cell runs, and every 200 ms (ipykernel's flush
    interval) otherwise, so that output from background threads still arrives. A plain flag,
    not an Event: waking this thread at every cell would cost more than its polling."""

    def __init__(self, tick: Callable[[], None]) -> None:
        self.running = False
        self._tick = tick
        threading.Thread(target=self._loop, daemon=True, name="output-flusher").start()

    def _loop(self) -> None:
        while True:
            time.sleep(_FLUSH_AFTER_S if self.running else _IDLE_FLUSH_S)
            self._tick()
