"""What the agent reads from the worker's pipes: raw stdout/stderr bytes, made into text
chunks every 50 ms or 256 KiB, and the message pipe's lines."""

import codecs
import time
from collections.abc import Callable, Iterator

import orjson

FLUSH_INTERVAL_S = 0.05
FLUSH_BYTES = 256 * 1024


def output_line(request_id: int, name: str, text: str) -> bytes:
    """An ``OutputChunk`` as the protocol encodes it, without building the model: the agent
    makes these from known values, and the host validates them as it does every line."""
    return orjson.dumps({"id": request_id, "type": "output", "name": name, "text": text})


class StreamChunker:
    """Decodes incrementally, so a character split across reads stays whole."""

    def __init__(self, name: str, emit: Callable[[str, str], None]) -> None:
        self.name = name
        self._emit = emit
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._parts: list[str] = []
        self._size = 0
        self._since: float | None = None

    def feed(self, data: bytes) -> None:
        text = self._decoder.decode(data)
        if not text:
            return
        self._parts.append(text)
        self._size += len(text)
        if self._since is None:
            self._since = time.monotonic()
        if self._size >= FLUSH_BYTES:
            self.flush()

    def due_in(self) -> float | None:
        """Seconds until the pending text must go out; None when nothing is pending."""
        if self._since is None:
            return None
        return max(0.0, self._since + FLUSH_INTERVAL_S - time.monotonic())

    def flush(self, final: bool = False) -> None:
        if final:
            tail = self._decoder.decode(b"", final=True)
            if tail:
                self._parts.append(tail)
        if self._parts:
            text = "".join(self._parts)
            self._parts.clear()
            self._size = 0
            self._since = None
            for start in range(0, len(text), FLUSH_BYTES):
                self._emit(self.name, text[start:start + FLUSH_BYTES])


class LineSplitter:
    """Whole lines, newline included, out of a byte stream. Only a line that spans reads is
    copied; one longer than ``limit`` is dropped, and None stands in for it."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._tail = bytearray()
        self._dropping = False

    def feed(self, data: bytes) -> Iterator[memoryview | None]:
        start = 0
        if self._tail or self._dropping:
            cut = data.find(b"\n")
            if cut < 0:
                self._keep(data)
                return
            if self._dropping:
                self._dropping = False
                yield None
            else:
                self._tail += data[:cut + 1]
                line = bytes(self._tail)
                self._tail.clear()
                yield memoryview(line)
            start = cut + 1
        view = memoryview(data)
        while (cut := data.find(b"\n", start)) >= 0:
            yield view[start:cut + 1]
            start = cut + 1
        self._keep(view[start:])

    def _keep(self, part: bytes | memoryview) -> None:
        if self._dropping:
            return
        self._tail += part
        if len(self._tail) > self._limit:
            self._tail.clear()
            self._dropping = True
