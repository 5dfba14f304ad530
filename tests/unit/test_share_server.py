"""FuseServer fed forged and malformed requests, as a hostile guest would send them: no
exception escapes, every request that needs a reply gets one, and nothing outside the
folder, hidden or special is ever reached."""

import errno
import os
import random
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox_kernel.share import fuse_wire as w
from sandbox_kernel.share.nodes import NodeTable, TableFull
from sandbox_kernel.share.server import NO_REPLY, FuseServer
from sandbox_kernel.share.settings import MIB, ShareSettings
from tests.unit.share_guest import FakeKernel, created_fh

SECRETS = (".ssh", "key.pem", ".env", "id_rsa.pub", ".netrc")


def make_tree(root: Path) -> None:
    (root / "data.txt").write_text("hello")
    (root / "sub").mkdir()
    (root / "sub" / "deep.txt").write_text("deep")
    (root / "out").mkdir()
    (root / "out" / "old.txt").write_text("x" * 1000)
    with open(root / "big.bin", "wb") as f:
        f.truncate(3 * MIB)
    (root / ".ssh").mkdir()
    (root / ".ssh" / "id_rsa").write_text("SECRET")
    for name in SECRETS[1:]:
        (root / name).write_text("SECRET")
    (root / "link").symlink_to("/etc/passwd")
    (root / "dirlink").symlink_to("/etc")
    (root.parent / "outside").mkdir()
    (root / "out" / "escape").symlink_to(root.parent / "outside")
    os.mkfifo(root / "fifo")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(root / "sock"))
    if os.geteuid() == 0:
        os.mknod(root / "null", 0o600 | stat.S_IFCHR, os.makedev(1, 3))


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "share"
    root.mkdir()
    make_tree(root)
    return root


@pytest.fixture
def told() -> list[str]:
    return []


@pytest.fixture
def kernel(tree: Path, told: list[str]) -> Iterator[FakeKernel]:
    settings = ShareSettings(tree, writable=("out",), max_file_bytes=2 * MIB,
                             max_read_bytes=4 * MIB, max_files=40, write_quota_bytes=64 * 1024)
    server = FuseServer(settings, told.append)
    fake = FakeKernel(server)
    fake.init()
    yield fake
    server.close()


def test_init_negotiates_minor_31_and_refuses_old_kernels(tree: Path) -> None:
    fake = FakeKernel(FuseServer(ShareSettings(tree), print))
    assert fake.err(w.LOOKUP, body=b"data.txt\0") == errno.EIO  # nothing before INIT
    assert fake.err(w.INIT, body=w.INIT_IN.pack(7, 26, 1 << 20, 0)) == errno.EPROTO
    assert fake.err(w.INIT, body=b"\7\0\0\0") == errno.EINVAL
    reply = w.INIT_OUT.unpack(fake.init(minor=27))
    assert reply[:2] == (7, 31) and reply[3] == w.WANTED_INIT_FLAGS
    assert fake.err(w.INIT, body=w.INIT_IN.pack(7, 37, 0, 0)) == errno.EPROTO  # only once


def test_a_newer_major_gets_ours_back(tree: Path) -> None:
    fake = FakeKernel(FuseServer(ShareSettings(tree), print))
    assert w.INIT_OUT.unpack(fake.ok(w.INIT, body=w.INIT_IN.pack(8, 0, 0, 0)))[:2] == (7, 31)
    assert fake.err(w.GETATTR, body=bytes(16)) == errno.EIO  # still waiting for a 7.x INIT


def test_reads_files_and_subfolders(kernel: FakeKernel) -> None:
    nodeid, mode = kernel.lookup(w.ROOT_ID, b"data.txt")
    assert mode == stat.S_IFREG | 0o444
    fh = kernel.open(nodeid)
    assert kernel.read(fh, 0, 4096) == b"hello" and kernel.read(fh, 5, 10) == b""
    deep = kernel.walk(b"sub/deep.txt")
    assert kernel.read(kernel.open(deep), 1, 2) == b"ee"
    assert kernel.lookup(w.ROOT_ID, b"sub")[1] == stat.S_IFDIR | 0o555
    assert kernel.lookup(w.ROOT_ID, b"out")[1] == stat.S_IFDIR | 0o755


def test_listing_hides_secrets_and_special_files(kernel: FakeKernel) -> None:
    names = {name for name, _ in kernel.listdir(w.ROOT_ID)}
    assert names == {b".", b"..", b"data.txt", b"sub", b"out", b"big.bin", b"link",
                     b"dirlink"}
    for name in (*SECRETS, "fifo", "sock", "null"):
        assert kernel.err(w.LOOKUP, body=name.encode() + b"\0") == errno.ENOENT


def test_listing_pages_through_small_buffers_and_restarts_on_seek(
        kernel: FakeKernel, tree: Path) -> None:
    for i in range(300):
        (tree / "sub" / f"file-{i:03}").write_text("")
    sub = kernel.walk(b"sub")
    small = kernel.listdir(sub, chunk=100)
    assert sorted(n for n, _ in small) == sorted(
        [b".", b"..", b"deep.txt"] + [f"file-{i:03}".encode() for i in range(300)])
    fh = w.OPEN_OUT.unpack(kernel.ok(w.OPENDIR, sub, w.OPEN_IN.pack(0, 0)))[0]
    first = kernel.ok(w.READDIR, sub, w.READ_IN.pack(fh, 0, 4096, 0, 0, 0, 0))
    again = kernel.ok(w.READDIR, sub, w.READ_IN.pack(fh, 0, 4096, 0, 0, 0, 0))
    assert first == again  # a rewind lists from the start
    assert kernel.ok(w.READDIR, sub, w.READ_IN.pack(fh, 10**9, 4096, 0, 0, 0, 0)) == b""


@pytest.mark.parametrize("name", [b"..", b".", b"", b"a/b", b"../etc", b"x\0y", b"/etc"])
def test_names_that_are_not_one_component_are_refused(kernel: FakeKernel,
                                                       name: bytes) -> None:
    code = kernel.err(w.LOOKUP, body=name + b"\0")
    assert code in (errno.EINVAL, errno.ENOENT)
    # "x\0y" is read as "x", which does not exist: either way, nothing outside is reached.


def test_symlinks_are_served_but_never_followed(kernel: FakeKernel) -> None:
    nodeid, mode = kernel.lookup(w.ROOT_ID, b"link")
    assert stat.S_ISLNK(mode)
    assert kernel.ok(w.READLINK, nodeid) == b"/etc/passwd"
    assert kernel.err(w.OPEN, nodeid, w.OPEN_IN.pack(os.O_RDONLY, 0)) in (
        errno.EINVAL, errno.ELOOP)
    dirlink = kernel.lookup(w.ROOT_ID, b"dirlink")[0]
    assert kernel.err(w.LOOKUP, dirlink, b"passwd\0") in (errno.ENOTDIR, errno.ELOOP)
    assert kernel.err(w.OPENDIR, dirlink, w.OPEN_IN.pack(0, 0)) == errno.ENOTDIR


def test_forged_node_ids_and_handles_miss(kernel: FakeKernel) -> None:
    for nodeid in (0, 2, 999, 2**64 - 1):
        assert kernel.err(w.GETATTR, nodeid, bytes(16)) == errno.ESTALE
        assert kernel.err(w.LOOKUP, nodeid, b"data.txt\0") == errno.ESTALE
    for fh in (0, 7, 2**64 - 1):
        assert kernel.err(w.READ, body=w.READ_IN.pack(fh, 0, 10, 0, 0, 0, 0)) == errno.EBADF
    fh = kernel.open(kernel.lookup(w.ROOT_ID, b"data.txt")[0])
    assert kernel.err(w.READDIR, body=w.READ_IN.pack(fh, 0, 10, 0, 0, 0, 0)) == errno.EBADF
    assert kernel.err(w.READ, body=w.READ_IN.pack(fh, 2**64 - 1, 10, 0, 0, 0, 0)) == errno.EINVAL
    assert len(kernel.read(fh, 0, 2**32 - 1)) == 5  # a huge size is clamped


def test_forget_drops_nodes_and_forged_forgets_do_no_harm(kernel: FakeKernel) -> None:
    nodeid = kernel.lookup(w.ROOT_ID, b"data.txt")[0]
    assert kernel.raw(w.FORGET, w.ROOT_ID, w.FORGET_IN.pack(2**64 - 1)) is None
    assert kernel.raw(w.FORGET, 12345, w.FORGET_IN.pack(1)) is None
    assert kernel.raw(w.FORGET, nodeid, b"") is None
    assert kernel.lookup(w.ROOT_ID, b"data.txt")[0] == nodeid  # same path, same id
    batch = w.BATCH_FORGET_IN.pack(2**32 - 1, 0) + w.FORGET_ONE.pack(nodeid, 2)
    assert kernel.raw(w.BATCH_FORGET, body=batch + b"\1\2\3") is None
    assert kernel.err(w.GETATTR, nodeid, bytes(16)) == errno.ESTALE
    assert kernel.ok(w.GETATTR, w.ROOT_ID, bytes(16))


def test_writes_outside_writable_subfolders_are_refused(kernel: FakeKernel,
                                                        told: list[str], tree: Path) -> None:
    data = kernel.lookup(w.ROOT_ID, b"data.txt")[0]
    assert kernel.err(w.OPEN, data, w.OPEN_IN.pack(os.O_WRONLY, 0)) == errno.EROFS
    assert kernel.create(w.ROOT_ID, b"new.txt")[0] == errno.EROFS
    assert kernel.err(w.MKDIR, body=w.MKDIR_IN.pack(0o755, 0) + b"d\0") == errno.EROFS
    assert kernel.err(w.UNLINK, body=b"data.txt\0") == errno.EROFS
    assert kernel.err(w.RMDIR, body=b"sub\0") == errno.EROFS
    assert kernel.err(w.SETATTR, data, w.SETATTR_IN.pack(w.FATTR_SIZE, *[0] * 15)) == errno.EROFS
    out = kernel.lookup(w.ROOT_ID, b"out")[0]
    assert kernel.err(w.RENAME, out, w.RENAME_IN.pack(w.ROOT_ID) + b"old.txt\0x\0") == errno.EROFS
    assert kernel.err(w.UNLINK, body=b"out\0") == errno.EROFS  # the writable root stays
    assert (tree / "data.txt").read_text() == "hello" and not (tree / "new.txt").exists()
    assert len(told) == 1 and "c.SandboxKernel.writable" in told[0]


def test_writes_inside_a_writable_subfolder_reach_the_host(kernel: FakeKernel,
                                                           tree: Path) -> None:
    out = kernel.lookup(w.ROOT_ID, b"out")[0]
    code, payload = kernel.create(out, b"new.txt", mode=0o7777)
    assert code == 0
    fh = created_fh(payload)
    assert kernel.write(fh, 0, b"hello host")[0] == 0
    assert (tree / "out" / "new.txt").read_bytes() == b"hello host"
    assert stat.S_IMODE((tree / "out" / "new.txt").stat().st_mode) & 0o7000 == 0
    assert kernel.create(out, b"new.txt", flags=os.O_CREAT | os.O_EXCL)[0] == errno.EEXIST
    sub = w.ENTRY_OUT.unpack(kernel.ok(w.MKDIR, out, w.MKDIR_IN.pack(0o7777, 0) + b"d\0")[:40])[0]
    assert stat.S_IMODE((tree / "out" / "d").stat().st_mode) & 0o7000 == 0
    kernel.ok(w.RENAME, out, w.RENAME_IN.pack(sub) + b"new.txt\0moved.txt\0")
    assert (tree / "out" / "d" / "moved.txt").read_bytes() == b"hello host"
    moved = kernel.walk(b"out/d/moved.txt")
    setuid = w.SETATTR_IN.pack(w.FATTR_MODE, *[0] * 10, 0o4755, 0, 0, 0, 0)
    kernel.ok(w.SETATTR, moved, setuid)
    assert stat.S_IMODE((tree / "out" / "d" / "moved.txt").stat().st_mode) == 0o755
    kernel.ok(w.UNLINK, sub, b"moved.txt\0")
    kernel.ok(w.RMDIR, out, b"d\0")
    assert sorted(p.name for p in (tree / "out").iterdir()) == ["escape", "old.txt"]


@pytest.mark.parametrize("opcode", [w.SYMLINK, w.LINK, w.MKNOD])
def test_links_and_device_nodes_are_never_made(kernel: FakeKernel, tree: Path,
                                               opcode: int) -> None:
    out = kernel.lookup(w.ROOT_ID, b"out")[0]
    body = {w.SYMLINK: b"evil\0/etc/shadow\0", w.LINK: w.RENAME_IN.pack(2) + b"evil\0",
            w.MKNOD: w.MKDIR_IN.pack(stat.S_IFCHR | 0o666, 0) + bytes(8) + b"evil\0"}[opcode]
    assert kernel.err(opcode, out, body) == errno.EPERM
    assert not os.path.lexists(tree / "out" / "evil")


def test_writable_subfolder_confines_names_and_symlinks(kernel: FakeKernel,
                                                        tree: Path) -> None:
    out = kernel.lookup(w.ROOT_ID, b"out")[0]
    assert kernel.create(out, b".env")[0] == errno.EACCES
    assert kernel.create(out, b"..")[0] == errno.EINVAL
    escape = kernel.lookup(out, b"escape")[0]
    assert kernel.create(escape, b"x")[0] in (errno.ENOTDIR, errno.ELOOP)
    assert kernel.err(w.RENAME, out, w.RENAME_IN.pack(out) + b"old.txt\0id_rsa\0") == errno.EACCES
    rename2 = w.RENAME2_IN.pack(out, 2, 0) + b"old.txt\0other\0"  # RENAME_EXCHANGE
    assert kernel.err(w.RENAME2, out, rename2) == errno.EINVAL
    assert not any((tree.parent / "outside").iterdir())
    assert sorted(p.name for p in (tree / "out").iterdir()) == ["escape", "old.txt"]


def test_quota_bounds_net_growth_and_says_which_setting(kernel: FakeKernel, told: list[str],
                                                        tree: Path) -> None:
    out = kernel.lookup(w.ROOT_ID, b"out")[0]
    fh = created_fh(kernel.create(out, b"grow.bin")[1])
    assert kernel.write(fh, 0, b"a" * 60_000)[0] == 0
    assert kernel.write(fh, 0, b"b" * 60_000)[0] == 0  # an overwrite does not grow
    assert kernel.write(fh, 60_000, b"c" * 10_000)[0] == errno.EDQUOT
    assert told == ["Writes to the shared folder's writable subfolders reached their quota "
                    "(c.SandboxKernel.writable_quota_mb = 0.0625)"]
    size_1g = w.SETATTR_IN.pack(w.FATTR_SIZE, 0, 0, 1 << 30, *[0] * 12)
    assert kernel.err(w.SETATTR, kernel.walk(b"out/grow.bin"), size_1g) == errno.EFBIG
    kernel.ok(w.RELEASE, body=w.RELEASE_IN.pack(fh, 0, 0, 0))
    kernel.ok(w.UNLINK, out, b"grow.bin\0")  # deleting gives the room back
    fh = created_fh(kernel.create(out, b"again.bin")[1])
    assert kernel.write(fh, 0, b"d" * 60_000)[0] == 0
    assert told[1] == ("out/grow.bin would grow past the shared folder's largest-file limit "
                       "(c.SandboxKernel.share_max_file_mb = 2)")


def test_largest_file_limit_on_open_and_write(kernel: FakeKernel, told: list[str]) -> None:
    big = kernel.lookup(w.ROOT_ID, b"big.bin")[0]
    assert kernel.err(w.OPEN, big, w.OPEN_IN.pack(os.O_RDONLY, 0)) == errno.EFBIG
    assert told == ["big.bin is 3.1 MB, over the shared folder's largest-file limit "
                    "(c.SandboxKernel.share_max_file_mb = 2)"]
    out = kernel.lookup(w.ROOT_ID, b"out")[0]
    fh = created_fh(kernel.create(out, b"f")[1])
    assert kernel.write(fh, 2 * MIB, b"x")[0] == errno.EFBIG
    assert "share_max_file_mb" in told[1]


def test_read_budget(kernel: FakeKernel, told: list[str], tree: Path) -> None:
    (tree / "one.bin").write_bytes(b"z" * MIB)
    fh = kernel.open(kernel.lookup(w.ROOT_ID, b"one.bin")[0])
    for _ in range(4):
        assert len(kernel.read(fh, 0, MIB)) == MIB
    assert kernel.err(w.READ, body=w.READ_IN.pack(fh, 0, 4096, 0, 0, 0, 0)) == errno.EDQUOT
    assert len(told) == 1 and "c.SandboxKernel.share_max_read_mb = 4" in told[0]


def test_node_table_is_bounded(kernel: FakeKernel, told: list[str], tree: Path) -> None:
    for i in range(60):
        (tree / "sub" / f"n{i}").write_text("")
    sub = kernel.lookup(w.ROOT_ID, b"sub")[0]
    codes = [kernel.call(w.LOOKUP, sub, f"n{i}".encode() + b"\0")[0] for i in range(60)]
    assert codes.count(0) == 39 and set(codes[39:]) == {errno.ENFILE}
    assert len(told) == 1 and "c.SandboxKernel.share_max_files = 40" in told[0]
    first = kernel.lookup(sub, b"n0")[0]
    kernel.raw(w.FORGET, first, w.FORGET_IN.pack(2))
    assert kernel.call(w.LOOKUP, sub, b"n50\0")[0] == 0


def test_open_handles_are_bounded(kernel: FakeKernel, told: list[str]) -> None:
    nodeid = kernel.lookup(w.ROOT_ID, b"data.txt")[0]
    codes = [kernel.call(w.OPEN, nodeid, w.OPEN_IN.pack(0, 0))[0] for _ in range(300)]
    assert codes.count(0) == 256 and set(codes[256:]) == {errno.ENFILE}
    assert kernel.err(w.OPENDIR, body=w.OPEN_IN.pack(0, 0)) == errno.ENFILE
    assert told == ["The VM has 256 files and folders of the shared folder open at once, "
                    "the most it may; close some to open others"]
    kernel.ok(w.RELEASE, body=w.RELEASE_IN.pack(1, 0, 0, 0))
    assert kernel.call(w.OPEN, nodeid, w.OPEN_IN.pack(0, 0))[0] == 0


def test_unknown_and_unsupported_operations(kernel: FakeKernel) -> None:
    assert kernel.err(w.GETXATTR, body=w.GETXATTR_IN.pack(100, 0) + b"user.x\0") == errno.ENOSYS
    for opcode in (w.LISTXATTR, w.SETXATTR, w.REMOVEXATTR, w.FLUSH, 31, 39, 40, 43, 46, 47,
                   4096, 2**32 - 1):
        assert kernel.err(opcode, body=bytes(64)) == errno.ENOSYS
    assert kernel.raw(w.INTERRUPT, body=w.FH_IN.pack(3)) is None
    assert len(kernel.ok(w.STATFS)) == w.STATFS_OUT.size
    assert kernel.ok(w.DESTROY) == b""


def test_a_header_that_lies_about_its_length_still_gets_an_answer(
        kernel: FakeKernel) -> None:
    request = w.IN_HEADER.pack(4000, w.GETATTR, 77, 1, 0, 0, 0, 0) + bytes(16)
    reply = kernel.server.handle(request)
    assert reply is not None and w.OUT_HEADER.unpack(reply) == (16, -errno.EINVAL, 77)
    assert kernel.server.handle(b"\1\2\3") is None


def test_random_requests_never_raise_and_are_always_answered(
        kernel: FakeKernel, caplog: pytest.LogCaptureFixture, tree: Path) -> None:
    rng = random.Random(1234)
    known = [w.ROOT_ID, kernel.lookup(w.ROOT_ID, b"out")[0], kernel.walk(b"sub/deep.txt")]
    names = [b"data.txt", b"out", b"..", b"new", b"", b"a" * 300, b"fifo", b".ssh"]
    for i in range(20000):
        opcode = rng.choice([*range(0, 50), 4096, rng.getrandbits(32)])
        if opcode == w.INIT:
            continue
        nodeid = rng.choice([*known, 0, rng.getrandbits(64)])
        body = rng.randbytes(rng.choice([0, 4, 8, 16, 24, 40, 88, 200]))
        if i % 3 == 0:
            body = body[:rng.randrange(len(body) + 1)] + rng.choice(names) + b"\0" + \
                rng.choice(names) + b"\0"
        reply = kernel.raw(opcode, nodeid, body)
        if opcode in NO_REPLY:
            assert reply is None
        else:
            assert reply is not None
            length, error, unique = w.OUT_HEADER.unpack_from(reply)
            assert (length, unique) == (len(reply), kernel.unique) and -512 < error <= 0
    assert kernel.ok(w.GETATTR, w.ROOT_ID, bytes(16))
    assert not [r for r in caplog.records if r.levelname == "ERROR"]  # no bug got an EIO
    assert not any((tree.parent / "outside").iterdir())


def _valid_requests(kernel: FakeKernel) -> list[bytes]:
    out, data = kernel.lookup(w.ROOT_ID, b"out")[0], kernel.lookup(w.ROOT_ID, b"data.txt")[0]
    fh = kernel.open(data)
    requests = [
        (w.LOOKUP, w.ROOT_ID, b"sub\0"), (w.GETATTR, data, bytes(16)),
        (w.READ, data, w.READ_IN.pack(fh, 0, 100, 0, 0, 0, 0)),
        (w.CREATE, out, w.CREATE_IN.pack(os.O_CREAT | os.O_RDWR, 0o644, 0, 0) + b"f\0"),
        (w.WRITE, out, w.WRITE_IN.pack(2, 0, 3, 0, 0, 0, 0) + b"abc"),
        (w.SETATTR, out, w.SETATTR_IN.pack(w.FATTR_MODE | w.FATTR_MTIME, *[0] * 10, 0o755,
                                           0, 0, 0, 0)),
        (w.RENAME2, out, w.RENAME2_IN.pack(out, 1, 0) + b"f\0g\0"),
        (w.MKDIR, out, w.MKDIR_IN.pack(0o755, 0) + b"d\0"), (w.UNLINK, out, b"g\0"),
        (w.READDIR, out, w.READ_IN.pack(1, 0, 4096, 0, 0, 0, 0)),
        (w.BATCH_FORGET, 0, w.BATCH_FORGET_IN.pack(1, 0) + w.FORGET_ONE.pack(data, 1)),
    ]
    return [w.IN_HEADER.pack(40 + len(body), op, 1, node, 0, 0, 0, 0) + body
            for op, node, body in requests]


def test_mutated_requests_never_raise_and_are_always_answered(
        kernel: FakeKernel, caplog: pytest.LogCaptureFixture, tree: Path) -> None:
    rng = random.Random(99)
    corpus = _valid_requests(kernel)
    for _ in range(20000):
        request = bytearray(rng.choice(corpus))
        for _ in range(rng.randrange(1, 4)):
            request[rng.randrange(8, len(request))] = rng.getrandbits(8)
        if rng.random() < 0.3:
            del request[rng.randrange(40, len(request) + 1):]
        request[:4] = len(request).to_bytes(4, "little")
        reply = kernel.server.handle(bytes(request))
        opcode = int.from_bytes(request[4:8], "little")
        assert (reply is None) == (opcode in NO_REPLY)
        if reply is not None:
            assert w.OUT_HEADER.unpack_from(reply)[0] == len(reply)
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
    assert not any((tree.parent / "outside").iterdir())


def test_settings_refuse_writable_paths_outside_the_folder(tree: Path) -> None:
    for bad in ("..", "../x", "/etc", "a/../..", ".", ""):
        with pytest.raises(ValueError):
            ShareSettings(tree, writable=(bad,))
    assert ShareSettings(tree, writable=("a/./b/",)).writable_paths == (b"a/b",)


def test_node_table_bounds_the_bytes_of_its_paths_too() -> None:
    table = NodeTable(limit=1000, max_bytes=1000)
    ids = [table.remember(b"d" * 99 + bytes([65 + i])) for i in range(10)]
    with pytest.raises(TableFull):
        table.remember(b"x")
    table.moved(b"d" * 99 + b"A", b"short", tree=True)
    table.removed(b"d" * 99 + b"B", tree=False)
    table.forget(ids[2], 1)
    assert table.path_bytes == 5 + 7 * 100
    with pytest.raises(OSError) as too_long:
        table.remember(b"a/" * 2049)
    assert too_long.value.errno == errno.ENAMETOOLONG
