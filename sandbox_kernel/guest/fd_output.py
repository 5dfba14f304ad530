"""Output the worker's processes write to file descriptors 1 and 2 (a subprocess, C code):
the agent reads those pipes' raw bytes and makes them into text chunks every 50 ms or 256 KiB."""

import codecs
import time
from collections.abc import Callable

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
