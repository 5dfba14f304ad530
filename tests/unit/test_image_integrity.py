"""A damaged image is named, with the fix, before any boot or restore (host only: the headers
of a made-up image's files)."""

import asyncio
import json
import struct
from pathlib import Path

import pytest

from sandbox_kernel.errors import ImageDamaged
from sandbox_kernel.image.store import image_paths, require_image
from sandbox_kernel.vm.config import VMConfig
from sandbox_kernel.vm.restore import launch_early

BLOCK = 4096


def _erofs(blocks: int, size: int) -> bytes:
    superblock = bytearray(128)
    struct.pack_into("<I", superblock, 0, 0xE0F5E1E2)
    struct.pack_into("<B", superblock, 12, 12)  # 4 KiB blocks
    struct.pack_into("<I", superblock, 36, blocks)
    data = bytes(1024) + bytes(superblock)
    return data + bytes(size - len(data))


def _elf(segment_end: int, size: int) -> bytes:
    header = bytearray(64)
    header[:5] = b"\x7fELF\x02"
    struct.pack_into("<Q", header, 0x20, 64)  # program headers right after
    struct.pack_into("<HH", header, 0x36, 56, 1)
    phdr = bytearray(56)
    struct.pack_into("<QQ", phdr, 8, 0x1000, 0)
    struct.pack_into("<Q", phdr, 32, segment_end - 0x1000)
    data = bytes(header) + bytes(phdr)
    return data + bytes(size - len(data))


@pytest.fixture
def image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SANDBOX_KERNEL_IMAGES_DIR", str(tmp_path / "images"))
    monkeypatch.setenv("SANDBOX_KERNEL_ACCEL", "tcg")
    folder = image_paths("default").folder
    folder.mkdir(parents=True)
    (folder / "root.erofs").write_bytes(_erofs(blocks=64, size=64 * BLOCK))
    (folder / "vmlinux").write_bytes(_elf(segment_end=0x3000, size=0x3000))
    (folder / "manifest.json").write_text(json.dumps({"packages": {}, "kernel_packages": {}}))
    (folder / "busybox").write_bytes(b"")
    return folder


def test_whole_files_pass(image: Path) -> None:
    assert image_paths("default").damage() is None


def test_a_root_cut_short_is_named_with_the_fix_before_any_boot(image: Path) -> None:
    root = image / "root.erofs"
    root.write_bytes(root.read_bytes()[:20 * BLOCK])
    with pytest.raises(ImageDamaged) as error:
        require_image("default")
    message = str(error.value)
    assert str(image) in message and "root.erofs is 0 MB, but its file system spans" in message
    assert "sandbox-kernel image build --force" in message
    assert launch_early(VMConfig(snapshots=True)) is None  # no restore on it, either


def test_a_kernel_cut_short_is_named(image: Path) -> None:
    kernel = image / "vmlinux"
    kernel.write_bytes(kernel.read_bytes()[:0x2000])
    assert image_paths("default").damage() == "vmlinux is cut short (8192 of 12288 bytes)"


def test_the_kernel_s_first_cell_and_doctor_say_so(image: Path) -> None:
    from sandbox_kernel.doctor import report
    from sandbox_kernel.vm.launch import start_vm

    (image / "root.erofs").write_bytes(b"not erofs at all")
    with pytest.raises(ImageDamaged, match=r"root\.erofs is not an erofs file system"):
        asyncio.run(start_vm(VMConfig(snapshots=True)))
    ok, lines = asyncio.run(report())
    assert not ok
    assert any("DAMAGED: root.erofs is not an erofs file system" in line for line in lines)
