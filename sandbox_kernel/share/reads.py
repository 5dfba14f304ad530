"""FUSE operations that only look: lookups, attributes, reading files and folders."""

import errno
import os
import stat

from sandbox_kernel.share import fuse_wire as w
from sandbox_kernel.share.folder import child
from sandbox_kernel.share.fuse_wire import Body, Header
from sandbox_kernel.share.handles import DirHandle, FileHandle
from sandbox_kernel.share.state import VALID_S, State

MAX_OFFSET = (1 << 63) - 1
GETATTR_FH = 1


def _error(code: int) -> OSError:
    return OSError(code, os.strerror(code))


def lookup(s: State, h: Header, b: Body) -> bytes:
    return s.entry(s.child_path(h.nodeid, b.name()))


def getattr_(s: State, h: Header, b: Body) -> bytes:
    path = s.nodes.path(h.nodeid)
    flags, _, fh = b.take(w.GETATTR_IN) if b.remaining() else (0, 0, 0)
    handle = None
    if flags & GETATTR_FH:
        try:
            handle = s.handles.file(fh)
        except OSError:
            pass
    # An open file's handle still answers after the name is gone.
    st = os.fstat(handle.fd) if handle is not None else s.folder.lstat(path)
    return w.attr_out(s.attr(path, st, h.nodeid), VALID_S)


def readlink(s: State, h: Header, b: Body) -> bytes:
    target = s.folder.readlink(s.nodes.path(h.nodeid))
    if len(target) >= 4096:  # more than the kernel takes back
        raise _error(errno.ENAMETOOLONG)
    return target


def open_(s: State, h: Header, b: Body) -> bytes:
    (flags, _) = b.take(w.OPEN_IN)
    path = s.nodes.path(h.nodeid)
    writing = flags & os.O_ACCMODE != os.O_RDONLY
    if writing and not s.settings.is_writable(path):
        raise s.limits.read_only(path)
    s.ensure_room(node=False, handle=True)
    fd = s.folder.open_file(path, flags)
    size = os.fstat(fd).st_size
    if not writing and size > s.settings.max_file_bytes:
        os.close(fd)
        raise s.limits.file_too_big(path, size)
    fh = s.add_handle(FileHandle(fd, path, writing))
    # Unchanged files keep the guest's page cache; AUTO_INVAL_DATA drops it when the
    # host's mtime or size moves.
    return w.open_out(fh, 0 if writing else w.FOPEN_KEEP_CACHE)


def read(s: State, h: Header, b: Body) -> bytes:
    fh, offset, size, *_ = b.take(w.READ_IN)
    handle = s.handles.file(fh)
    if offset > MAX_OFFSET:
        raise _error(errno.EINVAL)
    size = min(size, w.MAX_WRITE, max(0, s.settings.max_file_bytes - offset))
    s.limits.charge_read(size)
    data = os.pread(handle.fd, size, offset)
    s.limits.read_bytes += len(data)
    return data


def release(s: State, h: Header, b: Body) -> bytes:
    (fh, *_) = b.take(w.FH_IN)
    s.handles.release(fh)
    return b""


def opendir(s: State, h: Header, b: Body) -> bytes:
    path = s.nodes.path(h.nodeid)
    if not stat.S_ISDIR(s.folder.lstat(path).st_mode):
        raise _error(errno.ENOTDIR)
    return w.open_out(s.add_handle(DirHandle(path)))


def readdir(s: State, h: Header, b: Body) -> bytes:
    fh, offset, size, *_ = b.take(w.READ_IN)
    handle = s.handles.dir(fh)
    handle.seek(offset, s.folder)
    size, used, out = min(size, w.MAX_WRITE), 0, []
    while (entry := handle.next()) is not None:
        name, kind, host_ino = entry
        known = s.nodes.id_of(child(handle.path, name))
        # Known entries show the inode stat shows; others a tagged host inode.
        ino = known if known is not None else host_ino | (1 << 63)
        packed = w.dirent(ino, handle.position, kind >> 12, name)
        if used + len(packed) > size:
            handle.unread(entry)
            break
        out.append(packed)
        used += len(packed)
    return b"".join(out)


def statfs(s: State, h: Header, b: Body) -> bytes:
    st = s.folder.statvfs()
    return w.statfs_out(st.f_blocks, st.f_bfree, st.f_bavail, st.f_files, st.f_ffree,
                        st.f_frsize or st.f_bsize)


def access(s: State, h: Header, b: Body) -> bytes:
    (mask, _) = b.take(w.ACCESS_IN)
    path = s.nodes.path(h.nodeid)
    s.folder.lstat(path)
    if mask & os.W_OK and not (s.settings.overlaid or s.settings.is_writable(path)):
        raise _error(errno.EROFS)
    return b""


def fsync(s: State, h: Header, b: Body) -> bytes:
    (fh,) = b.take(w.FH_IN)
    handle = s.handles.file(fh)
    if handle.writable:
        os.fsync(handle.fd)
    return b""


def ok(s: State, h: Header, b: Body) -> bytes:
    return b""


def not_asked_again(s: State, h: Header, b: Body) -> bytes:
    """ENOSYS, which the guest's kernel remembers: it stops sending these, one round trip
    saved each time. FLUSH then counts as done (writes here are never deferred), and
    extended attributes are unsupported (callers get ENOTSUP; none are shared)."""
    raise _error(errno.ENOSYS)
