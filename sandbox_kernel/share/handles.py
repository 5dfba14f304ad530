"""Open files and folders of one VM, bounded, with ids that are never reused."""

import errno
import itertools
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass

from sandbox_kernel.share.folder import Folder

MAX_HANDLES = 256  # each holds host file descriptors

Entry = tuple[bytes, int, int]  # name, S_IFMT type, host inode
_DOTS: tuple[Entry, ...] = ((b".", stat.S_IFDIR, 1), (b"..", stat.S_IFDIR, 1))


@dataclass
class FileHandle:
    fd: int
    path: bytes
    writable: bool

    def close(self) -> None:
        os.close(self.fd)


class DirHandle:
    """A listing read lazily, so a folder of 100 000 files costs no memory up front; a
    READDIR at another offset than where the last one stopped starts the listing over."""

    def __init__(self, path: bytes) -> None:
        self.path = path
        self.position = 0
        self._source: Iterator[Entry] | None = None
        self._listing: Iterator[Entry] = iter(())
        self._pending: Entry | None = None

    def seek(self, offset: int, folder: Folder) -> None:
        if self._source is not None and offset == self.position:
            return
        self.close()
        self._source = folder.entries(self.path)
        self._listing = itertools.chain(_DOTS, self._source)
        self.position = 0
        while self.position < offset and self.next() is not None:
            pass

    def next(self) -> Entry | None:
        entry, self._pending = self._pending, None
        if entry is None:
            entry = next(self._listing, None)
        if entry is not None:
            self.position += 1
        return entry

    def unread(self, entry: Entry) -> None:
        self._pending = entry
        self.position -= 1

    def close(self) -> None:
        close = getattr(self._source, "close", None)
        if close is not None:
            close()
        self._source, self._listing, self._pending = None, iter(()), None


Handle = FileHandle | DirHandle


class HandleTable:
    def __init__(self, limit: int = MAX_HANDLES) -> None:
        self.limit = limit
        self._items: dict[int, Handle] = {}
        self._next = 1

    def full(self) -> bool:
        return len(self._items) >= self.limit

    def add(self, handle: Handle) -> int:
        if self.full():
            handle.close()
            raise OSError(errno.ENFILE, "too many open files in the shared folder")
        fh, self._next = self._next, self._next + 1
        self._items[fh] = handle
        return fh

    def file(self, fh: int) -> FileHandle:
        handle = self._items.get(fh)
        if not isinstance(handle, FileHandle):
            raise OSError(errno.EBADF, "bad file handle")
        return handle

    def dir(self, fh: int) -> DirHandle:
        handle = self._items.get(fh)
        if not isinstance(handle, DirHandle):
            raise OSError(errno.EBADF, "bad folder handle")
        return handle

    def release(self, fh: int) -> None:
        handle = self._items.pop(fh, None)
        if handle is not None:
            handle.close()

    def close_all(self) -> None:
        for fh in list(self._items):
            self.release(fh)
