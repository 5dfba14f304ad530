"""The agent's writer of requests into the worker's pipe: it never makes the agent wait."""

import os
import time

import pytest

from sandbox_kernel.guest.feeder import RequestFeeder

pytestmark = pytest.mark.timeout(30)


def _pipe() -> tuple[int, int]:
    r, w = os.pipe()
    os.set_blocking(r, False)
    return r, w


def _read_all(fd: int, size: int) -> bytes:
    data, deadline = b"", time.monotonic() + 10
    while len(data) < size and time.monotonic() < deadline:
        try:
            data += os.read(fd, 1 << 20)
        except BlockingIOError:
            time.sleep(0.01)
    return data


def test_lines_the_worker_does_not_read_are_queued_up_to_the_limit_without_waiting() -> None:
    r, w = _pipe()
    feeder = RequestFeeder(w, limit=4 * 2**20)
    line = b"x" * (3 * 2**20) + b"\n"  # more than the pipe holds
    started = time.monotonic()
    assert feeder.put(line)
    assert feeder.put(b"small\n")
    assert not feeder.put(line)  # past the limit: refused, at once
    assert time.monotonic() - started < 1.0
    assert _read_all(r, len(line) + 6) == line + b"small\n"  # in order, once read
    assert feeder.put(line)  # and room again
    assert _read_all(r, len(line)) == line
    feeder.close()
    os.close(r)


def test_closing_drops_what_is_queued_and_the_thread_closes_the_pipe() -> None:
    r, w = _pipe()
    feeder = RequestFeeder(w, limit=2**30)
    feeder.put(b"x" * (3 * 2**20))  # the thread blocks in its write
    feeder.put(b"dropped\n")
    feeder.close()
    assert feeder.put(b"after\n")  # taken and dropped: the worker's end answers for it
    os.close(r)  # the worker's end: the write fails, and the thread ends
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.fstat(w)
        except OSError:
            break
        time.sleep(0.01)
    else:
        pytest.fail("the feeder did not close its pipe")
