"""The FUSE ABI structs and the bounds-checked parsing of untrusted requests."""

import errno
import struct

import pytest

from sandbox_kernel.share import fuse_wire as w


@pytest.mark.parametrize(("fmt", "size"), [
    # Sizes from linux/fuse.h at protocol 7.31 (a wrong one and the kernel rejects the reply).
    (w.IN_HEADER, 40), (w.OUT_HEADER, 16), (w.INIT_IN, 16), (w.INIT_OUT, 64), (w.ATTR, 88),
    (w.ENTRY_OUT, 40), (w.ATTR_OUT, 16), (w.GETATTR_IN, 16), (w.OPEN_IN, 8),
    (w.OPEN_OUT, 16), (w.READ_IN, 40), (w.WRITE_OUT, 8), (w.RELEASE_IN, 24),
    (w.CREATE_IN, 16), (w.MKDIR_IN, 8), (w.RENAME2_IN, 16), (w.SETATTR_IN, 88),
    (w.STATFS_OUT, 80), (w.DIRENT, 24), (w.FORGET_ONE, 16), (w.BATCH_FORGET_IN, 8),
])
def test_struct_sizes_match_the_kernel_abi(fmt: struct.Struct, size: int) -> None:
    assert fmt.size == size


def _attr() -> w.Attr:
    return w.Attr(5, 10, 1, 1_500_000_000, 2_000_000_001, 3, 0o100444, 1, 1000, 1000)


def test_entry_and_attr_replies_have_their_full_sizes() -> None:
    assert len(w.entry_out(5, _attr(), 1.0)) == 128
    assert len(w.attr_out(_attr(), 1.0)) == 104
    fields = w.ATTR.unpack(w.pack_attr(_attr()))
    assert fields[3:9] == (1, 2, 0, 500_000_000, 1, 3)  # atime, mtime, ctime s then ns
    assert fields[9:13] == (0o100444, 1, 1000, 1000)


def test_init_reply_is_our_minor_with_what_the_kernel_offers_of_our_flags() -> None:
    offered = w.ASYNC_READ | w.BIG_WRITES | (1 << 3) | (1 << 16)  # ATOMIC_O_TRUNC, WRITEBACK
    major, minor, readahead, flags, _, _, max_write, gran, pages, _ = w.INIT_OUT.unpack(
        w.init_out(4 << 20, offered))
    assert (major, minor, max_write, gran, pages) == (7, 31, 1 << 20, 1, 256)
    assert readahead == 1 << 20
    assert flags == w.ASYNC_READ | w.BIG_WRITES


def test_header_must_announce_exactly_its_length() -> None:
    good = w.IN_HEADER.pack(40, w.GETATTR, 9, 1, 0, 0, 0, 0)
    assert w.parse_header(good).unique == 9
    for bad in (good[:39], w.IN_HEADER.pack(41, 3, 9, 1, 0, 0, 0, 0),
                good + b"x", b""):
        with pytest.raises(w.WireError):
            w.parse_header(bad)


def test_body_never_reads_past_its_end() -> None:
    body = w.Body(b"\0" * 40 + b"abc")
    with pytest.raises(w.WireError):
        body.take(w.FORGET_IN)
    with pytest.raises(w.WireError) as missing_nul:
        body.name()
    assert missing_nul.value.errno == errno.EINVAL
    with pytest.raises(w.WireError):
        body.rest(4)
    with pytest.raises(w.WireError):
        body.rest(-1)
    assert body.rest(3) == b"abc" and body.remaining() == 0


def test_names_are_bounded() -> None:
    assert w.Body(b"\0" * 40 + b"a" * 255 + b"\0").name() == b"a" * 255
    with pytest.raises(w.WireError) as long_name:
        w.Body(b"\0" * 40 + b"a" * 256 + b"\0").name()
    assert long_name.value.errno == errno.ENAMETOOLONG
    two = w.Body(b"\0" * 40 + b"old\0new\0")
    assert (two.name(), two.name()) == (b"old", b"new")


def test_dirents_are_padded_to_eight_bytes() -> None:
    for name in (b"a", b"abcdefgh", b"x" * 13):
        packed = w.dirent(7, 3, 8, name)
        assert len(packed) % 8 == 0
        assert w.DIRENT.unpack_from(packed) == (7, 3, len(name), 8)
        assert packed[24:24 + len(name)] == name


def test_error_replies_carry_only_errnos_the_kernel_accepts() -> None:
    assert w.OUT_HEADER.unpack(w.reply_error(4, errno.ENOENT)) == (16, -errno.ENOENT, 4)
    for bad in (0, -5, 512, 10**9):
        assert w.OUT_HEADER.unpack(w.reply_error(4, bad))[1] == -errno.EIO
    assert w.reply(3, b"ab", b"c") == w.OUT_HEADER.pack(19, 0, 3) + b"abc"
