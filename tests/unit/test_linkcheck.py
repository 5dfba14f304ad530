"""The libraries wheels' compiled modules need, read from their ELF dynamic sections, and
those the image lacks."""

import _ssl
import struct
from pathlib import Path

from sandbox_kernel.image import linkcheck
from sandbox_kernel.image.elf import Dynamic, read_dynamic


def tiny_elf(needed: list[str], runpath: str = "") -> bytes:
    """A 64-bit ELF with one PT_LOAD (file offset = address) and a PT_DYNAMIC section."""
    strings = b"\0"
    offsets = []
    for name in [*needed, runpath]:
        offsets.append(len(strings))
        strings += name.encode() + b"\0"
    dyn_at, header = 64 + 2 * 56, bytearray(64)
    entries = [(1, offset) for offset in offsets[:-1]]
    if runpath:
        entries.append((29, offsets[-1]))
    str_at = dyn_at + 16 * (len(entries) + 2)
    entries += [(5, str_at), (0, 0)]
    header[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<Q", header, 0x20, 64)
    struct.pack_into("<HH", header, 0x36, 56, 2)
    size = str_at + len(strings)
    load = struct.pack("<IIQQQQQQ", 1, 5, 0, 0, 0, size, size, 4096)
    dynamic = struct.pack("<IIQQQQQQ", 2, 6, dyn_at, dyn_at, dyn_at, 16 * len(entries),
                          16 * len(entries), 8)
    table = b"".join(struct.pack("<qQ", tag, value) for tag, value in entries)
    return bytes(header) + load + dynamic + table + strings


def test_the_dynamic_section_names_needed_libraries_and_where_to_look(tmp_path: Path) -> None:
    so = tmp_path / "mod.so"
    so.write_bytes(tiny_elf(["libfoo.so.1", "libc.so.6"], "$ORIGIN/../pkg.libs:/opt/x"))
    assert read_dynamic(so) == Dynamic(("libfoo.so.1", "libc.so.6"),
                                       ("$ORIGIN/../pkg.libs", "/opt/x"))
    (tmp_path / "text.so").write_text("not an ELF")
    assert read_dynamic(tmp_path / "text.so") is None
    # A real one: this interpreter's ssl module links OpenSSL and the C library.
    real = read_dynamic(Path(_ssl.__file__))
    assert real is not None and "libc.so.6" in real.needed
    assert any(lib.startswith("libssl") for lib in real.needed)


def test_libraries_the_image_lacks_are_named_with_the_files_needing_them(tmp_path: Path
                                                                          ) -> None:
    root, site = tmp_path / "root", tmp_path / "root/usr/local/lib/python3.11/dist-packages"
    (root / "lib/x86_64-linux-gnu").mkdir(parents=True)
    (root / "lib/x86_64-linux-gnu/libc.so.6").write_bytes(b"")
    (site / "cv2").mkdir(parents=True)
    (site / "pkg.libs").mkdir()
    (site / "pkg.libs/libbundled-abc.so.1").write_bytes(b"")
    (site / "cv2/cv2.so").write_bytes(tiny_elf(["libGL.so.1", "libc.so.6"]))
    (site / "cv2/other.so").write_bytes(tiny_elf(["libGL.so.1", "libbundled-abc.so.1"],
                                                 "$ORIGIN/../pkg.libs"))
    (site / "cv2/ok.so").write_bytes(tiny_elf(["libc.so.6"]))
    # Bundled libraries need each other without a RUNPATH: their folder is searched.
    (site / "pkg.libs/libgfortran-x.so.5").write_bytes(tiny_elf(["libbundled-abc.so.1"]))
    missing = linkcheck.missing_libraries(root, site)
    assert missing == {"libGL.so.1": ["cv2/cv2.so", "cv2/other.so"]}
    assert linkcheck.describe(missing) == "libGL.so.1 (for cv2/cv2.so and 1 more)"
    # Once the image has it (where ldconfig was told to look), nothing is missing.
    (root / "etc/ld.so.conf.d").mkdir(parents=True)
    (root / "etc/ld.so.conf.d/gl.conf").write_text("# GL\n/usr/lib/gl\n")
    (root / "usr/lib/gl").mkdir(parents=True)
    (root / "usr/lib/gl/libGL.so.1").write_bytes(b"")
    assert linkcheck.missing_libraries(root, site) == {}
