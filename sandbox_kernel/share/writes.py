"""FUSE operations that change the host folder: only inside writable subfolders."""

import errno
import os
import stat
import time

from sandbox_kernel.share import fuse_wire as w
from sandbox_kernel.share.fuse_wire import Body, Header
from sandbox_kernel.share.handles import FileHandle
from sandbox_kernel.share.state import VALID_S, State


def _error(code: int) -> OSError:
    return OSError(code, os.strerror(code))


def refuse(s: State, h: Header, b: Body) -> bytes:
    raise _error(errno.EPERM)  # symlinks, hard links and device nodes are never made


def create(s: State, h: Header, b: Body) -> bytes:
    flags, mode, _, _ = b.take(w.CREATE_IN)
    path = s.writable_child(h.nodeid, b.name())
    s.ensure_room(node=True, handle=True)
    fd, created = s.folder.create(path, mode, exclusive=bool(flags & os.O_EXCL))
    try:
        st = os.fstat(fd)
        if not created and flags & os.O_TRUNC and st.st_size:
            s.limits.charge_growth(-st.st_size)
            os.ftruncate(fd, 0)
            st = os.fstat(fd)
        entry = s.entry(path, st)
    except BaseException:
        os.close(fd)
        raise
    return entry + w.open_out(s.add_handle(FileHandle(fd, path, True)))


def write(s: State, h: Header, b: Body) -> bytes:
    fh, offset, size, *_ = b.take(w.WRITE_IN)
    data = b.rest(size)
    handle = s.handles.file(fh)
    if not handle.writable:
        raise _error(errno.EBADF)
    end = offset + size
    if end > s.settings.max_file_bytes:
        raise s.limits.file_too_big(handle.path, None)
    growth = max(0, end - os.fstat(handle.fd).st_size)
    s.limits.charge_growth(growth)
    try:
        written = os.pwrite(handle.fd, data, offset)
    except OSError:
        s.limits.charge_growth(-growth)
        raise
    return w.WRITE_OUT.pack(written, 0)


def _resize(s: State, path: bytes, size: int, fd: int | None) -> None:
    if size > s.settings.max_file_bytes:
        raise s.limits.file_too_big(path, None)
    old = os.fstat(fd).st_size if fd is not None else s.folder.lstat(path).st_size
    s.limits.charge_growth(size - old)
    if fd is not None:
        os.ftruncate(fd, size)
    else:
        s.folder.truncate(path, size)


def _when(seconds: int, nanos: int) -> int:
    """A guest's timestamp (an s64 sent as u64) in ns, within what time_t holds."""
    if seconds >= 1 << 63:
        seconds -= 1 << 64
    if nanos >= 1_000_000_000 or abs(seconds) > 1 << 40:
        raise _error(errno.EINVAL)
    return seconds * 1_000_000_000 + nanos


def _times(s: State, path: bytes, valid: int, values: tuple[int, ...]) -> None:
    atime, mtime, atime_ns, mtime_ns = values
    st = s.folder.lstat(path)
    now = time.time_ns()
    new_atime = now if valid & w.FATTR_ATIME_NOW else (
        _when(atime, atime_ns) if valid & w.FATTR_ATIME else st.st_atime_ns)
    new_mtime = now if valid & w.FATTR_MTIME_NOW else (
        _when(mtime, mtime_ns) if valid & w.FATTR_MTIME else st.st_mtime_ns)
    s.folder.set_times(path, new_atime, new_mtime)


def setattr_(s: State, h: Header, b: Body) -> bytes:
    (valid, _, fh, size, _, atime, mtime, _, atime_ns, mtime_ns, _, mode, _, uid, gid,
     _) = b.take(w.SETATTR_IN)
    path = s.nodes.path(h.nodeid)
    if not s.settings.is_writable(path):
        raise s.limits.read_only(path)
    chown = (valid & w.FATTR_UID and uid != s.settings.uid) or (
        valid & w.FATTR_GID and gid != s.settings.gid)
    if chown:
        raise _error(errno.EPERM)  # files on the host stay the kernel user's
    if valid & w.FATTR_SIZE:
        handle = s.handles.file(fh) if valid & w.FATTR_FH else None
        _resize(s, path, size, handle.fd if handle and handle.writable else None)
    if valid & w.FATTR_MODE:
        s.folder.chmod(path, mode & 0o777)
    if valid & (w.FATTR_ATIME | w.FATTR_MTIME | w.FATTR_ATIME_NOW | w.FATTR_MTIME_NOW):
        _times(s, path, valid, (atime, mtime, atime_ns, mtime_ns))
    return w.attr_out(s.attr(path, s.folder.lstat(path), h.nodeid), VALID_S)


def mkdir(s: State, h: Header, b: Body) -> bytes:
    mode, _ = b.take(w.MKDIR_IN)
    path = s.writable_child(h.nodeid, b.name())
    s.ensure_room(node=True, handle=False)
    s.folder.mkdir(path, mode)
    return s.entry(path)


def unlink(s: State, h: Header, b: Body) -> bytes:
    path = s.writable_child(h.nodeid, b.name())
    st = s.folder.unlink(path)
    if stat.S_ISREG(st.st_mode) and st.st_nlink == 1:
        s.limits.charge_growth(-st.st_size)
    s.nodes.removed(path, tree=False)
    return b""


def rmdir(s: State, h: Header, b: Body) -> bytes:
    path = s.writable_child(h.nodeid, b.name())
    s.folder.rmdir(path)
    s.nodes.removed(path, tree=True)
    return b""


def _rename(s: State, h: Header, b: Body, newdir: int, flags: int) -> bytes:
    if flags & ~w.RENAME_NOREPLACE:
        raise _error(errno.EINVAL)  # no exchange or whiteout
    old = s.writable_child(h.nodeid, b.name())
    new = s.writable_child(newdir, b.name())
    st, replaced = s.folder.rename(old, new, noreplace=bool(flags))
    if replaced is not None and stat.S_ISREG(replaced.st_mode) and replaced.st_nlink == 1:
        s.limits.charge_growth(-replaced.st_size)
    s.nodes.moved(old, new, tree=stat.S_ISDIR(st.st_mode))
    return b""


def rename(s: State, h: Header, b: Body) -> bytes:
    (newdir,) = b.take(w.RENAME_IN)
    return _rename(s, h, b, newdir, 0)


def rename2(s: State, h: Header, b: Body) -> bytes:
    newdir, flags, _ = b.take(w.RENAME2_IN)
    return _rename(s, h, b, newdir, flags)
