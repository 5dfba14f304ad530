"""Node ids the guest's kernel holds, each naming one confined relative path."""

import errno

from sandbox_kernel.share.fuse_wire import ROOT_ID


class TableFull(Exception):
    pass


MAX_PATH = 4096  # a relative path longer than the guest's PATH_MAX is refused
MAX_PATH_BYTES = 64 << 20  # all paths held at once: deep trees cannot grow the table unbounded


class NodeTable:
    """Ids are never reused, so a forged or stale id can only miss. A path whose entry was
    removed or replaced keeps its id (the kernel forgets it later) but no longer resolves."""

    def __init__(self, limit: int, max_bytes: int = MAX_PATH_BYTES) -> None:
        self.limit = limit
        self.max_bytes = max_bytes
        self.path_bytes = 0
        self._paths: dict[int, bytes | None] = {ROOT_ID: b""}
        self._lookups: dict[int, int] = {}
        self._ids: dict[bytes, int] = {b"": ROOT_ID}
        self._next = ROOT_ID + 1

    def __len__(self) -> int:
        return len(self._paths) - 1  # the root is always there

    def path(self, nodeid: int) -> bytes:
        path = self._paths.get(nodeid)
        if path is None:
            raise OSError(errno.ESTALE, "unknown node")
        return path

    def id_of(self, path: bytes) -> int | None:
        return self._ids.get(path)

    def remember(self, path: bytes) -> int:
        """The id of path, counted as one more lookup the kernel must forget."""
        nodeid = self._ids.get(path)
        if nodeid is None:
            if len(path) > MAX_PATH:
                raise OSError(errno.ENAMETOOLONG, "path too long")
            if len(self) >= self.limit or self.path_bytes + len(path) > self.max_bytes:
                raise TableFull
            nodeid, self._next = self._next, self._next + 1
            self._paths[nodeid], self._ids[path], self._lookups[nodeid] = path, nodeid, 0
            self.path_bytes += len(path)
        if nodeid != ROOT_ID:
            self._lookups[nodeid] += 1
        return nodeid

    def forget(self, nodeid: int, count: int) -> None:
        left = self._lookups.get(nodeid)
        if left is None:  # the root, or an id the guest made up
            return
        if left > count:
            self._lookups[nodeid] = left - count
            return
        del self._lookups[nodeid]
        path = self._paths.pop(nodeid)
        if path is not None and self._ids.get(path) == nodeid:
            del self._ids[path]
            self.path_bytes -= len(path)

    def _under(self, path: bytes, tree: bool) -> list[tuple[bytes, int]]:
        if not tree:
            nodeid = self._ids.get(path)
            return [] if nodeid is None else [(path, nodeid)]
        prefix = path + b"/"
        return [(p, i) for p, i in self._ids.items() if p == path or p.startswith(prefix)]

    def removed(self, path: bytes, tree: bool) -> None:
        """path (and, for a folder, what was under it) is gone."""
        for p, nodeid in self._under(path, tree):
            del self._ids[p]
            self._paths[nodeid] = None
            self.path_bytes -= len(p)

    def moved(self, old: bytes, new: bytes, tree: bool) -> None:
        self.removed(new, tree=True)
        moving = self._under(old, tree)
        for p, _ in moving:
            del self._ids[p]
        for p, nodeid in moving:  # a longer name may take a few bytes past max_bytes
            self._paths[nodeid] = new + p[len(old):]
            self._ids[new + p[len(old):]] = nodeid
            self.path_bytes += len(new) - len(old)
