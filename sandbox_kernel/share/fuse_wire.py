"""The FUSE kernel ABI (linux/fuse.h, protocol 7.31): parse requests, build replies.

Every request comes from an untrusted guest, so parsing is bounds-checked and fails with
WireError(errno) rather than with struct.error or IndexError.
"""

import errno
import struct
from dataclasses import dataclass

KERNEL_MAJOR = 7
MIN_KERNEL_MINOR = 27  # the guest's 6.1 kernel speaks 7.37; older ones are refused
MINOR = 31  # what this server implements and replies with

ROOT_ID = 1
MAX_WRITE = 1 << 20
MAX_PAGES = MAX_WRITE // 4096  # so READ and WRITE carry up to 1 MiB
MAX_READAHEAD = 1 << 20
MAX_NAME = 255
# The largest request: a WRITE of MAX_WRITE bytes, with room for headers.
MAX_REQUEST = MAX_WRITE + 4096

# Opcodes
LOOKUP, FORGET, GETATTR, SETATTR, READLINK, SYMLINK = 1, 2, 3, 4, 5, 6
MKNOD, MKDIR, UNLINK, RMDIR, RENAME, LINK, OPEN, READ, WRITE = 8, 9, 10, 11, 12, 13, 14, 15, 16
STATFS, RELEASE, FSYNC, SETXATTR, GETXATTR, LISTXATTR, REMOVEXATTR = 17, 18, 20, 21, 22, 23, 24
FLUSH, INIT, OPENDIR, READDIR, RELEASEDIR, FSYNCDIR = 25, 26, 27, 28, 29, 30
ACCESS, CREATE, INTERRUPT, DESTROY, BATCH_FORGET, RENAME2 = 34, 35, 36, 38, 42, 45

# INIT flags
ASYNC_READ = 1 << 0
BIG_WRITES = 1 << 5
AUTO_INVAL_DATA = 1 << 12
PARALLEL_DIROPS = 1 << 18
MAX_PAGES_FLAG = 1 << 22
WANTED_INIT_FLAGS = ASYNC_READ | BIG_WRITES | AUTO_INVAL_DATA | PARALLEL_DIROPS | MAX_PAGES_FLAG

# fuse_setattr_in.valid
FATTR_MODE, FATTR_UID, FATTR_GID, FATTR_SIZE = 1 << 0, 1 << 1, 1 << 2, 1 << 3
FATTR_ATIME, FATTR_MTIME, FATTR_FH = 1 << 4, 1 << 5, 1 << 6
FATTR_ATIME_NOW, FATTR_MTIME_NOW = 1 << 7, 1 << 8

FOPEN_KEEP_CACHE = 1 << 1
RENAME_NOREPLACE = 1 << 0

IN_HEADER = struct.Struct("<IIQQIIII")  # len, opcode, unique, nodeid, uid, gid, pid, pad
OUT_HEADER = struct.Struct("<IiQ")  # len, error, unique
INIT_IN = struct.Struct("<IIII")  # major, minor, max_readahead, flags
# major, minor, max_readahead, flags, max_background, congestion_threshold, max_write,
# time_gran, max_pages, map_alignment, unused[8]
INIT_OUT = struct.Struct("<IIIIHHIIHH32x")
ATTR = struct.Struct("<QQQQQQIIIIIIIIII")
ENTRY_OUT = struct.Struct("<QQQQII")  # nodeid, generation, entry_valid, attr_valid, nsecs
ATTR_OUT = struct.Struct("<QII")  # attr_valid, attr_valid_nsec, dummy
GETATTR_IN = struct.Struct("<IIQ")
FORGET_IN = struct.Struct("<Q")
BATCH_FORGET_IN = struct.Struct("<II")
FORGET_ONE = struct.Struct("<QQ")
OPEN_IN = struct.Struct("<II")
OPEN_OUT = struct.Struct("<QII")
READ_IN = struct.Struct("<QQIIQII")  # fh, offset, size, read_flags, lock_owner, flags, pad
WRITE_IN = READ_IN  # same layout: fh, offset, size, write_flags, lock_owner, flags, pad
WRITE_OUT = struct.Struct("<II")
RELEASE_IN = struct.Struct("<QIIQ")
FH_IN = struct.Struct("<Q")  # the leading fh of flush_in and fsync_in
CREATE_IN = struct.Struct("<IIII")  # flags, mode, umask, open_flags
MKDIR_IN = struct.Struct("<II")  # mode, umask
RENAME_IN = struct.Struct("<Q")
RENAME2_IN = struct.Struct("<QII")
SETATTR_IN = struct.Struct("<IIQQQQQQIIIIIIII")
ACCESS_IN = struct.Struct("<II")
GETXATTR_IN = struct.Struct("<II")
STATFS_OUT = struct.Struct("<QQQQQIII4x24x")
DIRENT = struct.Struct("<QQII")  # ino, off, namelen, type


class WireError(Exception):
    """A request that cannot be parsed; errno is what the guest gets back."""

    def __init__(self, code: int = errno.EINVAL) -> None:
        super().__init__(errno.errorcode.get(code, str(code)))
        self.errno = code


@dataclass(frozen=True, slots=True)
class Header:
    opcode: int
    unique: int
    nodeid: int
    uid: int
    gid: int
    pid: int


class Body:
    """A cursor over a request's body that never reads past its end."""

    def __init__(self, data: bytes, offset: int = IN_HEADER.size) -> None:
        self._data = data
        self._pos = offset

    def take(self, fmt: struct.Struct) -> tuple[int, ...]:
        end = self._pos + fmt.size
        if end > len(self._data):
            raise WireError(errno.EINVAL)
        values = fmt.unpack_from(self._data, self._pos)
        self._pos = end
        return values

    def name(self) -> bytes:
        """A NUL-terminated name, at most MAX_NAME bytes."""
        end = self._data.find(b"\0", self._pos, self._pos + MAX_NAME + 1)
        if end < 0:
            too_long = len(self._data) - self._pos > MAX_NAME
            raise WireError(errno.ENAMETOOLONG if too_long else errno.EINVAL)
        value = self._data[self._pos:end]
        self._pos = end + 1
        return value

    def rest(self, size: int) -> bytes:
        end = self._pos + size
        if size < 0 or end > len(self._data):
            raise WireError(errno.EINVAL)
        value = self._data[self._pos:end]
        self._pos = end
        return value

    def remaining(self) -> int:
        return len(self._data) - self._pos


def parse_header(data: bytes) -> Header:
    if len(data) < IN_HEADER.size:
        raise WireError(errno.EINVAL)
    length, opcode, unique, nodeid, uid, gid, pid, _ = IN_HEADER.unpack_from(data)
    if length != len(data):
        raise WireError(errno.EINVAL)
    return Header(opcode, unique, nodeid, uid, gid, pid)


def request_length(prefix: bytes | bytearray | memoryview) -> int:
    """The length a request announces in its first four bytes."""
    return int.from_bytes(prefix[:4], "little")


def reply(unique: int, *payload: bytes) -> bytes:
    size = OUT_HEADER.size + sum(len(p) for p in payload)
    return b"".join((OUT_HEADER.pack(size, 0, unique), *payload))


def reply_error(unique: int, code: int) -> bytes:
    if not 0 < code < 512:  # the kernel rejects anything else
        code = errno.EIO
    return OUT_HEADER.pack(OUT_HEADER.size, -code, unique)


@dataclass(frozen=True, slots=True)
class Attr:
    ino: int
    size: int
    blocks: int
    atime_ns: int
    mtime_ns: int
    ctime_ns: int
    mode: int
    nlink: int
    uid: int
    gid: int
    blksize: int = 128 * 1024  # the guest's stdio buffers this much per read


def _split_ns(ns: int) -> tuple[int, int]:
    seconds, nanos = divmod(max(ns, 0), 1_000_000_000)
    return seconds, nanos


def pack_attr(attr: Attr) -> bytes:
    (asec, ans), (msec, mns), (csec, cns) = map(
        _split_ns, (attr.atime_ns, attr.mtime_ns, attr.ctime_ns))
    return ATTR.pack(attr.ino, attr.size, attr.blocks, asec, msec, csec, ans, mns, cns,
                     attr.mode, attr.nlink, attr.uid, attr.gid, 0, attr.blksize, 0)


def entry_out(nodeid: int, attr: Attr, valid_s: float) -> bytes:
    sec, nsec = _split_ns(int(valid_s * 1e9))
    return ENTRY_OUT.pack(nodeid, 0, sec, sec, nsec, nsec) + pack_attr(attr)


def attr_out(attr: Attr, valid_s: float) -> bytes:
    sec, nsec = _split_ns(int(valid_s * 1e9))
    return ATTR_OUT.pack(sec, nsec, 0) + pack_attr(attr)


def open_out(fh: int, flags: int = 0) -> bytes:
    return OPEN_OUT.pack(fh, flags, 0)


def init_out(kernel_max_readahead: int, kernel_flags: int) -> bytes:
    return INIT_OUT.pack(KERNEL_MAJOR, MINOR, min(kernel_max_readahead, MAX_READAHEAD),
                         kernel_flags & WANTED_INIT_FLAGS, 16, 12, MAX_WRITE, 1, MAX_PAGES, 0)


def statfs_out(blocks: int, bfree: int, bavail: int, files: int, ffree: int,
               bsize: int) -> bytes:
    return STATFS_OUT.pack(blocks, bfree, bavail, files, ffree, bsize, MAX_NAME, bsize)


def dirent(ino: int, next_offset: int, dtype: int, name: bytes) -> bytes:
    """One fuse_dirent, padded to 8 bytes as the kernel expects."""
    head = DIRENT.pack(ino, next_offset, len(name), dtype)
    pad = -(len(head) + len(name)) % 8
    return head + name + b"\0" * pad
