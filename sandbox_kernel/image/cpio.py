"""A deterministic newc cpio writer for the initramfs (no timestamps, all owned by root)."""

import stat
from pathlib import Path
from typing import IO


def _header(ino: int, mode: int, size: int, name: bytes) -> bytes:
    fields = [ino, mode, 0, 0, 1, 0, size, 0, 0, 0, 0, len(name) + 1, 0]
    head = b"070701" + b"".join(f"{f:08x}".encode() for f in fields)
    return head + name + b"\0"


def _pad(out: IO[bytes], written: int) -> None:
    out.write(b"\0" * (-written % 4))


def write_archive(src: Path, out: IO[bytes]) -> None:
    """Archives ``src``'s tree, paths relative to it, sorted so that builds are reproducible."""
    entries = sorted(p for p in src.rglob("*"))
    for ino, path in enumerate(entries, start=1):
        name = str(path.relative_to(src)).encode()
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            body = str(path.readlink()).encode()
        elif stat.S_ISREG(st.st_mode):
            body = path.read_bytes()
        else:
            body = b""
        head = _header(ino, st.st_mode, len(body), name)
        out.write(head)
        _pad(out, len(head))
        out.write(body)
        _pad(out, len(body))
    trailer = _header(0, 0, 0, b"TRAILER!!!")
    out.write(trailer)
    _pad(out, len(trailer))
