"""A pretend guest kernel for FuseServer: builds requests, checks and splits replies."""

import os
import stat

from sandbox_kernel.share import fuse_wire as w
from sandbox_kernel.share.server import FuseServer

ALL_FLAGS = (1 << 32) - 1


class FakeKernel:
    def __init__(self, server: FuseServer) -> None:
        self.server = server
        self.unique = 0

    def raw(self, opcode: int, nodeid: int = w.ROOT_ID, body: bytes = b"") -> bytes | None:
        self.unique += 2
        header = w.IN_HEADER.pack(40 + len(body), opcode, self.unique, nodeid, 1000, 1000, 7, 0)
        return self.server.handle(header + body)

    def call(self, opcode: int, nodeid: int = w.ROOT_ID, body: bytes = b"") -> tuple[int, bytes]:
        """(errno, payload) of a request that must be answered."""
        out = self.raw(opcode, nodeid, body)
        assert out is not None
        length, error, unique = w.OUT_HEADER.unpack_from(out)
        assert (length, unique) == (len(out), self.unique) and error <= 0
        return -error, out[16:]

    def ok(self, opcode: int, nodeid: int = w.ROOT_ID, body: bytes = b"") -> bytes:
        code, payload = self.call(opcode, nodeid, body)
        assert code == 0, os.strerror(code)
        return payload

    def err(self, opcode: int, nodeid: int = w.ROOT_ID, body: bytes = b"") -> int:
        code, _ = self.call(opcode, nodeid, body)
        assert code != 0
        return code

    def init(self, minor: int = 37) -> bytes:
        return self.ok(w.INIT, body=w.INIT_IN.pack(7, minor, 1 << 20, ALL_FLAGS))

    def lookup(self, parent: int, name: bytes) -> tuple[int, int]:
        """(node id, mode)."""
        payload = self.ok(w.LOOKUP, parent, name + b"\0")
        nodeid = w.ENTRY_OUT.unpack_from(payload)[0]
        return nodeid, w.ATTR.unpack_from(payload, w.ENTRY_OUT.size)[9]

    def walk(self, path: bytes) -> int:
        nodeid = w.ROOT_ID
        for part in path.split(b"/"):
            nodeid = self.lookup(nodeid, part)[0]
        return nodeid

    def open(self, nodeid: int, flags: int = os.O_RDONLY) -> int:
        return int(w.OPEN_OUT.unpack(self.ok(w.OPEN, nodeid, w.OPEN_IN.pack(flags, 0)))[0])

    def read(self, fh: int, offset: int, size: int, nodeid: int = w.ROOT_ID) -> bytes:
        return self.ok(w.READ, nodeid, w.READ_IN.pack(fh, offset, size, 0, 0, 0, 0))

    def listdir(self, nodeid: int, chunk: int = 4096) -> list[tuple[bytes, int]]:
        fh = w.OPEN_OUT.unpack(self.ok(w.OPENDIR, nodeid, w.OPEN_IN.pack(0, 0)))[0]
        names, offset = [], 0
        while payload := self.ok(w.READDIR, nodeid, w.READ_IN.pack(fh, offset, chunk, 0, 0,
                                                                   0, 0)):
            pos = 0
            while pos < len(payload):
                _, offset, namelen, dtype = w.DIRENT.unpack_from(payload, pos)
                name = payload[pos + 24:pos + 24 + namelen]
                names.append((name, dtype))
                pos += (24 + namelen + 7) & ~7
        self.ok(w.RELEASEDIR, nodeid, w.RELEASE_IN.pack(fh, 0, 0, 0))
        return names

    def create(self, parent: int, name: bytes, mode: int = 0o644,
               flags: int = os.O_WRONLY | os.O_CREAT) -> tuple[int, bytes]:
        """(errno, payload) of a CREATE."""
        return self.call(w.CREATE, parent, w.CREATE_IN.pack(flags, mode, 0o022, 0) + name + b"\0")

    def write(self, fh: int, offset: int, data: bytes) -> tuple[int, bytes]:
        return self.call(w.WRITE, w.ROOT_ID,
                         w.WRITE_IN.pack(fh, offset, len(data), 0, 0, 0, 0) + data)


def created_fh(payload: bytes) -> int:
    return int(w.OPEN_OUT.unpack_from(payload, w.ENTRY_OUT.size + w.ATTR.size)[0])


def is_dir(mode: int) -> bool:
    return stat.S_ISDIR(mode)
