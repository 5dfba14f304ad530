"""The shared folder's limits for one VM, and telling the user, once, when one is hit."""

import errno
import logging
import os
from collections.abc import Callable

from sandbox_kernel.share.settings import MIB, ShareSettings

log = logging.getLogger(__name__)
MAX_MESSAGES = 256  # distinct messages told per VM: a guest cannot make the set grow


def human(size: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


def shown(path: bytes) -> str:
    """A host path for a message: printable, and short."""
    text = path.decode(errors="replace") or "the shared folder"
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= 120 else "…" + text[-119:]


def _error(code: int) -> OSError:
    return OSError(code, os.strerror(code))


class Limits:
    def __init__(self, settings: ShareSettings, notify: Callable[[str], None]) -> None:
        self.settings = settings
        self._notify = notify
        self._told: set[object] = set()
        self.read_bytes = 0
        self.written_bytes = 0  # net growth of the writable subfolders

    def tell(self, key: object, message: str) -> None:
        if key in self._told or len(self._told) >= MAX_MESSAGES:
            return
        self._told.add(key)
        try:
            self._notify(message)
        except Exception:
            log.exception("share: notify failed")

    def _mb(self, size: int) -> str:
        return f"{size / MIB:g}"

    def file_too_big(self, path: bytes, size: int | None) -> OSError:
        limit = self.settings.max_file_bytes
        what = f"is {human(size)}, over" if size is not None else "would grow past"
        self.tell(("max_file", path), f"{shown(path)} {what} the shared folder's "
                  f"largest-file limit (c.SandboxKernel.share_max_file_mb = {self._mb(limit)})")
        return _error(errno.EFBIG)

    def charge_read(self, size: int) -> None:
        limit = self.settings.max_read_bytes
        if self.read_bytes + size > limit:
            self.tell("max_read", f"The VM has read {human(self.read_bytes)} from the shared "
                      f"folder, its limit (c.SandboxKernel.share_max_read_mb = "
                      f"{self._mb(limit)}); further reads fail until the kernel restarts")
            raise _error(errno.EDQUOT)

    def charge_growth(self, size: int) -> None:
        limit = self.settings.write_quota_bytes
        if size > 0 and self.written_bytes + size > limit:
            self.tell("quota", f"Writes to the shared folder's writable subfolders reached "
                      f"their quota (c.SandboxKernel.writable_quota_mb = {self._mb(limit)})")
            raise _error(errno.EDQUOT)
        self.written_bytes = max(0, self.written_bytes + size)

    def too_many_files(self) -> OSError:
        limit = self.settings.max_files
        self.tell("max_files", f"The VM holds {limit} files and folders of the shared folder "
                  f"at once, its limit (c.SandboxKernel.share_max_files = {limit}); "
                  "look-ups of further ones fail until it lets some go")
        return _error(errno.ENFILE)

    def too_many_open(self, limit: int) -> OSError:
        self.tell("open", f"The VM has {limit} files and folders of the shared folder open at "
                  "once, the most it may; close some to open others")
        return _error(errno.ENFILE)

    def read_only(self, path: bytes) -> OSError:
        areas = ", ".join(repr(w) for w in self.settings.writable) or "none"
        self.tell("writable", f"{shown(path)} is read-only in the VM: only the shared "
                  f"folder's writable subfolders take writes (c.SandboxKernel.writable: "
                  f"{areas})")
        return _error(errno.EROFS)
