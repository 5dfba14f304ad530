import os
import threading
from pathlib import Path

import pytest

from sandbox_kernel.guest import ports


@pytest.mark.parametrize("size", [0, 100, 32 * 1024 - 1, 32 * 1024, 100_000, 262_143, 262_144])
def test_a_line_goes_out_whole_in_as_few_writes_as_fit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int) -> None:
    # SIGIO on changes is for the agent, which waits for it; here it would end the process.
    monkeypatch.setattr(ports, "_notify_on_change", lambda fd: None)
    fifo = tmp_path / "port"
    os.mkfifo(fifo)
    received = bytearray()

    def read_all() -> None:
        with open(fifo, "rb") as reader:
            while chunk := reader.read(1 << 16):
                received.extend(chunk)

    reader = threading.Thread(target=read_all)
    reader.start()
    writes: list[int] = []
    real_write = os.write

    def counting_write(fd: int, data: bytes | memoryview) -> int:
        writes.append(len(data))
        return real_write(fd, data)

    monkeypatch.setattr(ports.os, "write", counting_write)
    port = ports.EventPort(str(fifo))
    payload = bytes(i % 251 for i in range(size))
    port.send_json(payload)
    os.close(port.fd)
    reader.join(10)
    assert bytes(received) == payload + b"\n"
    assert all(n <= ports._MAX_WRITE for n in writes)
    assert len([n for n in writes if n]) == -(-(size + 1) // ports._MAX_WRITE)
