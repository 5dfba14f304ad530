"""FuseServer: answers raw FUSE requests from an untrusted guest about one host folder."""

import errno
import logging
from collections.abc import Callable

from sandbox_kernel.share import fuse_wire as w
from sandbox_kernel.share import reads, writes
from sandbox_kernel.share.folder import Folder
from sandbox_kernel.share.fuse_wire import Body, Header, WireError
from sandbox_kernel.share.handles import HandleTable
from sandbox_kernel.share.limits import Limits
from sandbox_kernel.share.nodes import NodeTable
from sandbox_kernel.share.settings import ShareSettings
from sandbox_kernel.share.state import State

log = logging.getLogger(__name__)

Op = Callable[[State, Header, Body], bytes]

OPS: dict[int, Op] = {
    w.LOOKUP: reads.lookup, w.GETATTR: reads.getattr_, w.READLINK: reads.readlink,
    w.OPEN: reads.open_, w.READ: reads.read, w.RELEASE: reads.release,
    w.OPENDIR: reads.opendir, w.READDIR: reads.readdir, w.RELEASEDIR: reads.release,
    w.STATFS: reads.statfs, w.ACCESS: reads.access, w.FSYNC: reads.fsync,
    w.FSYNCDIR: reads.ok, w.FLUSH: reads.not_asked_again, w.GETXATTR: reads.not_asked_again,
    w.LISTXATTR: reads.not_asked_again, w.SETXATTR: reads.not_asked_again,
    w.REMOVEXATTR: reads.not_asked_again,
    w.CREATE: writes.create, w.WRITE: writes.write, w.SETATTR: writes.setattr_,
    w.MKDIR: writes.mkdir, w.UNLINK: writes.unlink, w.RMDIR: writes.rmdir,
    w.RENAME: writes.rename, w.RENAME2: writes.rename2,
    w.SYMLINK: writes.refuse, w.LINK: writes.refuse, w.MKNOD: writes.refuse,
}
NO_REPLY = (w.FORGET, w.BATCH_FORGET, w.INTERRUPT)
MAX_FORGETS = w.MAX_REQUEST // w.FORGET_ONE.size


class FuseServer:
    def __init__(self, settings: ShareSettings, notify: Callable[[str], None]) -> None:
        self.settings = settings
        self.state = State(settings, Folder(settings.folder, settings.exclude),
                           NodeTable(settings.max_files), HandleTable(),
                           Limits(settings, notify))
        self.initialized = False

    def close(self) -> None:
        self.state.handles.close_all()
        self.state.folder.close()

    def handle(self, request: bytes) -> bytes | None:
        """The reply to one request, or None for those that get none."""
        try:
            h = w.parse_header(request)
        except WireError as e:  # answer it if its unique can be read at all
            if len(request) < w.IN_HEADER.size or w.IN_HEADER.unpack_from(request)[1] in NO_REPLY:
                return None
            return w.reply_error(w.IN_HEADER.unpack_from(request)[2], e.errno)
        body = Body(request)
        if h.opcode in NO_REPLY:
            self._forget(h, body)
            return None
        try:
            return w.reply(h.unique, self._dispatch(h, body))
        except (WireError, OSError) as e:
            return w.reply_error(h.unique, e.errno or errno.EIO)
        except Exception:
            log.exception("share: request %d failed", h.opcode)
            return w.reply_error(h.unique, errno.EIO)

    def _dispatch(self, h: Header, body: Body) -> bytes:
        if h.opcode == w.INIT:
            return self._init(body)
        if not self.initialized:
            raise WireError(errno.EIO)
        if h.opcode == w.DESTROY:
            self.state.handles.close_all()
            return b""
        op = OPS.get(h.opcode)
        if op is None:
            raise WireError(errno.ENOSYS)
        return op(self.state, h, body)

    def _init(self, body: Body) -> bytes:
        major, minor, max_readahead, flags = body.take(w.INIT_IN)
        if self.initialized or major < w.KERNEL_MAJOR or (
                major == w.KERNEL_MAJOR and minor < w.MIN_KERNEL_MINOR):
            raise WireError(errno.EPROTO)
        # A newer major: reply with ours, and the kernel falls back to it (or gives up).
        self.initialized = major == w.KERNEL_MAJOR
        return w.init_out(max_readahead, flags)

    def _forget(self, h: Header, body: Body) -> None:
        try:
            if h.opcode == w.FORGET:
                self.state.nodes.forget(h.nodeid, body.take(w.FORGET_IN)[0])
            elif h.opcode == w.BATCH_FORGET:
                count = min(body.take(w.BATCH_FORGET_IN)[0], MAX_FORGETS)
                for _ in range(count):
                    nodeid, nlookup = body.take(w.FORGET_ONE)
                    self.state.nodes.forget(nodeid, nlookup)
        except WireError:
            pass  # a short batch: what could be read was applied
