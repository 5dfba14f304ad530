"""Splitting a byte stream into bounded lines: the host's event port, the agent's command port
and the worker's message pipe all carry one JSON message per line. Standard library only: the
guest ships it."""

from collections.abc import Iterator


class LineSplitter:
    """Whole lines, newline included, out of a byte stream. Only a line that spans reads is
    copied. A line longer than ``limit`` (newline excluded) is dropped: None stands in for it
    as soon as it is known to be too long, and the rest of it is skipped."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._tail = bytearray()
        self._dropping = False

    def feed(self, data: bytes) -> Iterator[memoryview | None]:
        start = 0
        if self._tail or self._dropping:
            cut = data.find(b"\n")
            if cut < 0:
                yield from self._keep(data)
                return
            if self._dropping:
                self._dropping = False
            else:
                self._tail += data[:cut + 1]
                line = bytes(self._tail)
                self._tail.clear()
                yield self._bounded(memoryview(line))
            start = cut + 1
        view = memoryview(data)
        while (cut := data.find(b"\n", start)) >= 0:
            yield self._bounded(view[start:cut + 1])
            start = cut + 1
        yield from self._keep(view[start:])

    def _bounded(self, line: memoryview) -> memoryview | None:
        return line if len(line) - 1 <= self._limit else None

    def _keep(self, part: bytes | memoryview) -> Iterator[None]:
        if self._dropping or not part:
            return
        if len(self._tail) + len(part) > self._limit:
            self._tail.clear()
            self._dropping = True
            yield None
            return
        self._tail += part
