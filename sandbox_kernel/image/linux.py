"""Turns Debian's cloud kernel package into an uncompressed PVH ``vmlinux`` and its modules."""

import struct
import subprocess
from pathlib import Path

from sandbox_kernel.errors import ImageBuildError

_LZ4_LEGACY_MAGIC = b"\x02\x21\x4c\x18"
_ELF_MAGIC = b"\x7fELF"


def extract_vmlinux(bzimage: Path, out: Path) -> None:
    """microvm boots an ELF with a PVH note, so unpack the bzImage's payload."""
    data = bzimage.read_bytes()
    setup_sects = data[0x1F1] or 4
    payload_offset, payload_length = struct.unpack_from("<II", data, 0x248)
    start = (setup_sects + 1) * 512 + payload_offset
    payload = data[start:start + payload_length]
    if not payload.startswith(_LZ4_LEGACY_MAGIC):
        raise ImageBuildError(
            f"{bzimage.name}: payload is not LZ4 (magic {payload[:4].hex()}); "
            "only LZ4-compressed kernels are supported"
        )
    proc = subprocess.run(["lz4", "-d", "-c"], input=payload, capture_output=True, check=False)
    # lz4 may complain about the padding after the last block; what matters is a whole ELF.
    if not proc.stdout.startswith(_ELF_MAGIC):
        raise ImageBuildError(f"lz4 could not unpack {bzimage.name}: {proc.stderr.decode()[-500:]}")
    out.write_bytes(proc.stdout)


def module_depends(ko: Path) -> list[str]:
    """The ``depends=`` field of a module's .modinfo section."""
    blob = ko.read_bytes()
    marker = blob.find(b"\0depends=")
    if marker < 0:
        return []
    end = blob.index(b"\0", marker + 1)
    value = blob[marker + len(b"\0depends="):end].decode()
    return [d for d in value.split(",") if d]


def find_modules(modules_root: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for ko in modules_root.rglob("*.ko"):
        found[ko.stem.replace("-", "_")] = ko
    return found


def load_order(wanted: tuple[str, ...], modules_root: Path) -> list[Path]:
    """``wanted`` and everything they depend on, dependencies first; built-ins are skipped."""
    available = find_modules(modules_root)
    ordered: list[Path] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        name = name.replace("-", "_")
        if name in seen:
            return
        seen.add(name)
        ko = available.get(name)
        if ko is None:
            return  # built into the kernel
        for dep in module_depends(ko):
            visit(dep)
        ordered.append(ko)

    for name in wanted:
        visit(name)
    return ordered
