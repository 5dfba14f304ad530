"""What one VM may see and do in the shared folder."""

from dataclasses import dataclass, field
from pathlib import Path

from sandbox_kernel.share.policy import DEFAULT_EXCLUDES

MIB = 1 << 20


def valid_name(name: bytes) -> bool:
    """One path component: not empty, '.', '..', and without '/' or NUL."""
    return (0 < len(name) <= 255 and name not in (b".", b"..")
            and b"/" not in name and b"\0" not in name)


@dataclass(frozen=True)
class ShareSettings:
    folder: Path
    writable: tuple[str, ...] = ()  # subfolders, relative to folder, whose writes reach the host
    exclude: tuple[str, ...] = DEFAULT_EXCLUDES  # glob patterns matched against each name
    max_file_bytes: int = 1024 * MIB
    max_read_bytes: int = 16 * 1024 * MIB  # read by one VM in its lifetime
    max_files: int = 200_000  # nodes the guest's kernel may hold at once
    write_quota_bytes: int = 1024 * MIB  # net growth of the writable subfolders
    uid: int = 1000  # the guest's user
    gid: int = 1000
    # The guest lays an overlay over the mount: read-only areas then show owner-writable
    # modes, since the overlay's copy-up takes those writes (the server still refuses them).
    overlaid: bool = False
    writable_paths: tuple[bytes, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        paths = []
        for entry in self.writable:
            parts = tuple(p for p in entry.encode().split(b"/") if p not in (b"", b"."))
            if not parts or not all(valid_name(p) for p in parts) or entry.startswith("/"):
                raise ValueError(f"writable subfolder {entry!r} is not a path inside the folder")
            paths.append(b"/".join(parts))
        object.__setattr__(self, "writable_paths", tuple(paths))

    def is_writable(self, path: bytes) -> bool:
        """Whether path (relative, b'' for the root) is a writable subfolder or inside one."""
        return any(path == w or path.startswith(w + b"/") for w in self.writable_paths)
