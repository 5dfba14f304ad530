"""What a shared object asks of the dynamic loader: the libraries it needs (DT_NEEDED) and
where it says to look for them (DT_RUNPATH, DT_RPATH). 64-bit little-endian ELF only, the
guest's kind; anything else is not an ELF this reads."""

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path

_PT_LOAD, _PT_DYNAMIC = 1, 2
_DT_NULL, _DT_NEEDED, _DT_STRTAB, _DT_RPATH, _DT_RUNPATH = 0, 1, 5, 15, 29


@dataclass(frozen=True)
class Dynamic:
    needed: tuple[str, ...]
    search: tuple[str, ...]  # as written, $ORIGIN and all


def read_dynamic(path: Path) -> Dynamic | None:
    """None for a file that is not a 64-bit little-endian ELF with a dynamic section."""
    with path.open("rb") as fh:
        if fh.read(6) != b"\x7fELF\x02\x01":
            return None
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
            try:
                return _parse(data)
            except (struct.error, ValueError, IndexError):
                return None  # truncated or malformed: not ours to judge


def _parse(data: mmap.mmap) -> Dynamic | None:
    phoff = struct.unpack_from("<Q", data, 0x20)[0]
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    loads, dynamic = [], None
    for index in range(phnum):
        kind, _, offset, vaddr, _, filesz = struct.unpack_from(
            "<IIQQQQ", data, phoff + index * phentsize)
        if kind == _PT_LOAD:
            loads.append((vaddr, offset, filesz))
        elif kind == _PT_DYNAMIC:
            dynamic = (offset, filesz)
    if dynamic is None:
        return None
    entries = []
    for at in range(dynamic[0], dynamic[0] + dynamic[1], 16):
        tag, value = struct.unpack_from("<qQ", data, at)
        if tag == _DT_NULL:
            break
        entries.append((tag, value))
    strtab = next(value for tag, value in entries if tag == _DT_STRTAB)
    table = next(offset + strtab - vaddr for vaddr, offset, size in loads
                 if vaddr <= strtab < vaddr + size)

    def string(at: int) -> str:
        end = data.find(b"\0", table + at)
        return bytes(data[table + at:end]).decode(errors="replace")

    needed = tuple(string(value) for tag, value in entries if tag == _DT_NEEDED)
    search = tuple(part for tag, value in entries if tag in (_DT_RPATH, _DT_RUNPATH)
                   for part in string(value).split(":") if part)
    return Dynamic(needed, search)
