"""Confined access to the shared host folder.

Paths are relative byte strings of single components joined by b'/' (b'' is the root),
built only from names that passed valid_name(). They are resolved from an O_PATH fd of the
root, never as one multi-component path string: with openat2(RESOLVE_BENEATH |
RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS) where the kernel has it, else one O_NOFOLLOW
component at a time. Symlinks are never followed; fifos, sockets and devices are never
opened: an object is pinned with O_PATH, checked with fstat, and only then reopened
through /proc/self/fd, so that a swap between the check and the open cannot slip in.
"""

import ctypes
import errno
import fnmatch
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sandbox_kernel.share.settings import valid_name

_PATH_DIR = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_PIN = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_LIST_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_RESOLVE = 0x08 | 0x04 | 0x02  # RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS
_SYS_OPENAT2 = 437  # the same number on every architecture
VISIBLE_TYPES = (stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK)

_libc = ctypes.CDLL(None, use_errno=True)


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


def _error(code: int) -> OSError:
    return OSError(code, os.strerror(code))


def split(path: bytes) -> tuple[bytes, bytes]:
    parent, _, name = path.rpartition(b"/")
    return parent, name


def child(parent: bytes, name: bytes) -> bytes:
    return parent + b"/" + name if parent else name


class Folder:
    def __init__(self, root: Path, exclude: tuple[str, ...], openat2: bool = True) -> None:
        self._root = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        self._exclude = tuple(p.encode() for p in exclude)
        self.openat2 = openat2  # until the kernel or a seccomp filter says otherwise
        self._proc = os.path.isdir("/proc/self/fd")

    def close(self) -> None:
        os.close(self._root)

    def hidden(self, name: bytes) -> bool:
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self._exclude)

    def check_name(self, name: bytes) -> None:
        """A name the guest sent: one visible component, or ENOENT-like errors."""
        if not valid_name(name):
            raise _error(errno.ENAMETOOLONG if len(name) > 255 else errno.EINVAL)
        if self.hidden(name):
            raise _error(errno.ENOENT)

    def _try_openat2(self, path: bytes) -> int | None:
        how = _OpenHow(_PATH_DIR & ~os.O_NOFOLLOW, 0, _RESOLVE)
        fd = _libc.syscall(_SYS_OPENAT2, self._root, path, ctypes.byref(how),
                           ctypes.sizeof(how))
        if fd >= 0:
            return int(fd)
        code = ctypes.get_errno()
        if code in (errno.ENOSYS, errno.EPERM):
            self.openat2 = False
        elif code != errno.EAGAIN:  # EAGAIN: a racing rename; the walk settles it
            raise _error(code)
        return None

    def _open_dir_path(self, path: bytes) -> int:
        """An O_PATH fd of the directory at path, reached without following any symlink."""
        if not path:
            return os.dup(self._root)
        if self.openat2 and (fd := self._try_openat2(path)) is not None:
            return fd
        fd = os.dup(self._root)
        try:
            for part in path.split(b"/"):
                next_fd = os.open(part, _PATH_DIR, dir_fd=fd)
                os.close(fd)
                fd = next_fd
        except BaseException:
            os.close(fd)
            raise
        return fd

    @contextmanager
    def parent_of(self, path: bytes) -> Iterator[tuple[int, bytes]]:
        """The parent directory's fd and the last name of a non-root path."""
        parent, name = split(path)
        if not name:
            raise _error(errno.EPERM)  # the root has no parent to act in
        fd = self._open_dir_path(parent)
        try:
            yield fd, name
        finally:
            os.close(fd)

    def lstat(self, path: bytes) -> os.stat_result:
        if not path:
            return os.stat(self._root)
        with self.parent_of(path) as (fd, name):
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        if stat.S_IFMT(st.st_mode) not in VISIBLE_TYPES:
            raise _error(errno.ENOENT)
        return st

    @contextmanager
    def pinned(self, path: bytes) -> Iterator[tuple[int, os.stat_result]]:
        """An O_PATH fd of the object itself (a symlink stays a symlink) and its stat."""
        fd = self._open_dir_path(path) if not path else None
        if fd is None:
            with self.parent_of(path) as (dir_fd, name):
                fd = os.open(name, _PIN, dir_fd=dir_fd)
        try:
            st = os.fstat(fd)
            if stat.S_IFMT(st.st_mode) not in VISIBLE_TYPES:
                raise _error(errno.ENOENT)
            yield fd, st
        finally:
            os.close(fd)

    def _reopen(self, pin: int, path: bytes, flags: int) -> int:
        if self._proc:
            return os.open(f"/proc/self/fd/{pin}", (flags | _FILE) & ~os.O_NOFOLLOW)
        with self.parent_of(path) as (dir_fd, name):
            return os.open(name, flags | _FILE, dir_fd=dir_fd)

    def open_file(self, path: bytes, flags: int) -> int:
        """An fd of the regular file at path, opened with flags' access mode only."""
        with self.pinned(path) as (pin, st):
            if not stat.S_ISREG(st.st_mode):
                raise _error(errno.EISDIR if stat.S_ISDIR(st.st_mode) else errno.EINVAL)
            fd = self._reopen(pin, path, flags & os.O_ACCMODE)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise _error(errno.ENOENT)
        return fd

    def readlink(self, path: bytes) -> bytes:
        with self.parent_of(path) as (fd, name):
            return os.readlink(name, dir_fd=fd)

    def entries(self, path: bytes) -> Iterator[tuple[bytes, int, int]]:
        """(name, S_IFMT type, host inode) of each visible entry of the directory at path."""
        with self._open_list_fd(path) as fd, os.scandir(fd) as listing:
            for entry in listing:
                name = os.fsencode(entry.name)
                if self.hidden(name):
                    continue
                if entry.is_symlink():
                    kind = stat.S_IFLNK
                elif entry.is_dir(follow_symlinks=False):
                    kind = stat.S_IFDIR
                elif entry.is_file(follow_symlinks=False):
                    kind = stat.S_IFREG
                else:
                    continue  # fifos, sockets, devices
                yield name, kind, entry.inode()

    @contextmanager
    def _open_list_fd(self, path: bytes) -> Iterator[int]:
        if path:
            with self.parent_of(path) as (dir_fd, name):
                fd = os.open(name, _LIST_DIR, dir_fd=dir_fd)
        else:
            fd = os.open(".", _LIST_DIR, dir_fd=self._root)
        try:
            yield fd
        finally:
            os.close(fd)

    def statvfs(self) -> os.statvfs_result:
        return os.fstatvfs(self._root)

    # Writes: the server allows them only in writable subfolders; here they stay confined.

    def create(self, path: bytes, mode: int, exclusive: bool) -> tuple[int, bool]:
        """An fd (read-write) of a new regular file, or of the existing one unless exclusive;
        and whether it was created."""
        with self.parent_of(path) as (dir_fd, name):
            try:
                fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL | _FILE, mode & 0o666,
                             dir_fd=dir_fd)
                return fd, True
            except FileExistsError:
                if exclusive:
                    raise
        return self.open_file(path, os.O_RDWR), False

    def mkdir(self, path: bytes, mode: int) -> None:
        with self.parent_of(path) as (dir_fd, name):
            os.mkdir(name, mode & 0o777, dir_fd=dir_fd)

    def unlink(self, path: bytes) -> os.stat_result:
        st = self.lstat(path)
        if stat.S_ISDIR(st.st_mode):
            raise _error(errno.EISDIR)
        with self.parent_of(path) as (dir_fd, name):
            os.unlink(name, dir_fd=dir_fd)
        return st

    def rmdir(self, path: bytes) -> None:
        if not stat.S_ISDIR(self.lstat(path).st_mode):
            raise _error(errno.ENOTDIR)
        with self.parent_of(path) as (dir_fd, name):
            os.rmdir(name, dir_fd=dir_fd)

    def rename(self, old: bytes, new: bytes, noreplace: bool
               ) -> tuple[os.stat_result, os.stat_result | None]:
        """Renames old to new; returns old's stat and that of the entry it replaced."""
        st = self.lstat(old)
        try:
            replaced: os.stat_result | None = self.lstat(new)
        except FileNotFoundError:
            replaced = None
            with self.parent_of(new) as (dir_fd, name):  # an invisible entry is not replaced
                if _exists(name, dir_fd):
                    raise _error(errno.EEXIST) from None
        with self.parent_of(old) as (src, old_name), self.parent_of(new) as (dst, new_name):
            if noreplace:
                _renameat2(src, old_name, dst, new_name, 1)
            else:
                os.rename(old_name, new_name, src_dir_fd=src, dst_dir_fd=dst)
        return st, replaced

    def truncate(self, path: bytes, size: int) -> None:
        fd = self.open_file(path, os.O_WRONLY)
        try:
            os.ftruncate(fd, size)
        finally:
            os.close(fd)

    def chmod(self, path: bytes, mode: int) -> None:
        with self.pinned(path) as (_, st):
            kind = stat.S_IFMT(st.st_mode)
        if kind == stat.S_IFLNK:
            raise _error(errno.EOPNOTSUPP)
        if kind == stat.S_IFDIR:
            with self._open_list_fd(path) as fd:
                os.fchmod(fd, mode & 0o777)  # never setuid, setgid or sticky
            return
        fd = self.open_file(path, os.O_RDONLY)
        try:
            os.fchmod(fd, mode & 0o777)
        finally:
            os.close(fd)

    def set_times(self, path: bytes, atime_ns: int, mtime_ns: int) -> None:
        with self.parent_of(path) as (dir_fd, name):
            os.utime(name, ns=(atime_ns, mtime_ns), dir_fd=dir_fd, follow_symlinks=False)


def _exists(name: bytes, dir_fd: int) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _renameat2(src: int, old: bytes, dst: int, new: bytes, flags: int) -> None:
    if _libc.renameat2(src, old, dst, new, ctypes.c_uint(flags)) != 0:
        raise _error(ctypes.get_errno())
