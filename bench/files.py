"""The notebook's folder: reading a file beside the notebook, and starting a kernel in a big
folder (1 GB in a hundred files, and 100 000 small files), which must cost the start nothing."""

import contextlib
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench import kernels as k

_READ_CELL = """
import time
_started = time.perf_counter()
with open('data.bin', 'rb') as _f:
    _size = sum(len(block) for block in iter(lambda: _f.read(1 << 20), b''))
print(_size / (time.perf_counter() - _started) / 1e6)
"""


@contextlib.contextmanager
def folder_with_data(megabytes: int) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="bench-files-") as tmp:
        block = bytes(range(256)) * 4096  # 1 MiB
        with (Path(tmp) / "data.bin").open("wb") as out:
            for _ in range(megabytes):
                out.write(block)
        yield Path(tmp)


def file_read_MBps(name: str, folder: Path) -> float:
    """MB/s of a cell reading the file, the first time, in a fresh kernel started there."""
    with k.kernel(name, cwd=folder) as (_, kc):
        k.execute(kc, "pass")
        msg_id = kc.execute(_READ_CELL)
        text = ""
        while True:
            msg = k._next_iopub(kc, "the read cell's output")
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream":
                text += msg["content"]["text"]
            elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
        return float(text.strip())


@contextlib.contextmanager
def big_folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="bench-bigdir-") as tmp:
        root = Path(tmp)
        block = b"\x5a" * (1 << 20)
        for index in range(100):  # 1 GB of data
            with (root / f"part-{index:03d}.bin").open("wb") as out:
                for _ in range(10):
                    out.write(block)
        for group in range(100):  # and 100 000 small files
            sub = root / "many" / f"{group:03d}"
            sub.mkdir(parents=True)
            for index in range(1000):
                (sub / f"{index:04d}.txt").write_bytes(b"x")
        yield root


def start_in(folder: Path) -> float:
    started = time.perf_counter()
    with k.kernel(k.SANDBOX, cwd=folder) as (_, kc):
        reply = k.execute(kc, "1+1")
        elapsed = time.perf_counter() - started
        assert reply["status"] == "ok", reply
    return elapsed


def empty_folder() -> Path:
    return Path(tempfile.mkdtemp(prefix="bench-empty-"))


def remove(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
