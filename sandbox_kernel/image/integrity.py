"""Whether a built image's files are whole, read from their own headers in microseconds: a
root cut short (a full disk, a copy interrupted) otherwise boots to a kernel panic whose
console names neither the image nor the fix."""

import struct
from pathlib import Path

_EROFS_MAGIC = 0xE0F5E1E2
_EROFS_SUPER = 1024  # the superblock's offset: magic at +0, blkszbits at +12, blocks at +36
_ELF_MAGIC = b"\x7fELF"


def _erofs_damage(root: Path) -> str | None:
    with root.open("rb") as fh:
        fh.seek(_EROFS_SUPER)
        head = fh.read(40)
    if len(head) < 40 or struct.unpack_from("<I", head, 0)[0] != _EROFS_MAGIC:
        return f"{root.name} is not an erofs file system"
    block_bits, = struct.unpack_from("<B", head, 12)
    blocks, = struct.unpack_from("<I", head, 36)
    needed, size = blocks << block_bits, root.stat().st_size
    if size < needed:
        return f"{root.name} is {size / 2**20:.0f} MB, but its file system spans " \
               f"{needed / 2**20:.0f} MB"
    return None


def _elf_damage(kernel: Path) -> str | None:
    with kernel.open("rb") as fh:
        head = fh.read(64)
        if len(head) < 64 or not head.startswith(_ELF_MAGIC) or head[4] != 2:
            return f"{kernel.name} is not a 64-bit ELF kernel"
        phoff, = struct.unpack_from("<Q", head, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", head, 0x36)
        fh.seek(phoff)
        table = fh.read(phentsize * phnum)
    if len(table) < phentsize * phnum:
        return f"{kernel.name} is cut short"
    # Each program header: p_offset at +8 and p_filesz at +32; the file must hold them all.
    end = max((struct.unpack_from("<Q", table, i * phentsize + 8)[0]
               + struct.unpack_from("<Q", table, i * phentsize + 32)[0]
               for i in range(phnum)), default=0)
    size = kernel.stat().st_size
    return f"{kernel.name} is cut short ({size} of {end} bytes)" if size < end else None


def damage(root: Path, kernel: Path) -> str | None:
    """What is wrong with an image's root and kernel, or None when both look whole."""
    try:
        return _erofs_damage(root) or _elf_damage(kernel)
    except OSError as exc:
        return f"its files cannot be read ({exc})"
