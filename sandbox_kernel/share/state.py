"""What the FUSE operations share: settings, the folder, nodes, handles and limits."""

import errno
import os
import stat
from dataclasses import dataclass

from sandbox_kernel.share import fuse_wire as w
from sandbox_kernel.share.folder import Folder, child
from sandbox_kernel.share.handles import Handle, HandleTable
from sandbox_kernel.share.limits import Limits
from sandbox_kernel.share.nodes import NodeTable, TableFull
from sandbox_kernel.share.settings import ShareSettings

VALID_S = 1.0  # entry and attribute timeouts: host edits show within a second


@dataclass
class State:
    settings: ShareSettings
    folder: Folder
    nodes: NodeTable
    handles: HandleTable
    limits: Limits

    def attr(self, path: bytes, st: os.stat_result, nodeid: int) -> w.Attr:
        kind = stat.S_IFMT(st.st_mode)
        writable = self.settings.overlaid or self.settings.is_writable(path)
        if kind == stat.S_IFLNK:
            perms = 0o777
        elif kind == stat.S_IFDIR:
            perms = 0o755 if writable else 0o555
        else:  # host executables stay executable
            perms = (0o644 if writable else 0o444) | (0o111 if st.st_mode & 0o100 else 0)
        return w.Attr(nodeid, st.st_size, st.st_blocks, st.st_atime_ns, st.st_mtime_ns,
                      st.st_ctime_ns, kind | perms, st.st_nlink, self.settings.uid,
                      self.settings.gid)

    def remember(self, path: bytes) -> int:
        try:
            return self.nodes.remember(path)
        except TableFull:
            raise self.limits.too_many_files() from None

    def entry(self, path: bytes, st: os.stat_result | None = None) -> bytes:
        """A fuse_entry_out for path, which the kernel now holds one more lookup of."""
        st = st or self.folder.lstat(path)
        return w.entry_out(nodeid := self.remember(path), self.attr(path, st, nodeid), VALID_S)

    def child_path(self, parent_id: int, name: bytes) -> bytes:
        parent = self.nodes.path(parent_id)
        self.folder.check_name(name)
        return child(parent, name)

    def writable_child(self, parent_id: int, name: bytes) -> bytes:
        """The path of a name to create, remove or rename in a writable folder."""
        parent = self.nodes.path(parent_id)
        if not self.settings.is_writable(parent):
            raise self.limits.read_only(child(parent, name))
        try:
            self.folder.check_name(name)
        except FileNotFoundError:  # an excluded name: not to be made or replaced
            raise OSError(errno.EACCES, os.strerror(errno.EACCES)) from None
        return child(parent, name)

    def ensure_room(self, node: bool, handle: bool) -> None:
        """Before creating or opening: fail now rather than leave what the guest can't use."""
        if node and len(self.nodes) >= self.nodes.limit:
            raise self.limits.too_many_files()
        if handle and self.handles.full():
            raise self.limits.too_many_open(self.handles.limit)

    def add_handle(self, handle: Handle) -> int:
        try:
            self.ensure_room(node=False, handle=True)
        except OSError:
            handle.close()
            raise
        return self.handles.add(handle)
