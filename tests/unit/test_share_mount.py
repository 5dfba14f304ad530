"""The real thing on this host: the server mounted through /dev/fuse, with the guest's relay
over a socketpair, used with ordinary Python file operations."""

import ctypes
import errno
import glob
import hashlib
import os
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from sandbox_kernel.guest import share_mount
from sandbox_kernel.share.loopback import loopback_mount, unavailable
from sandbox_kernel.share.settings import MIB, ShareSettings

pytestmark = [pytest.mark.skipif(unavailable() is not None, reason=str(unavailable())),
              # "thread": a test stuck in a FUSE request cannot take a signal
              pytest.mark.timeout(60, method="thread")]

SYSTEM_PYTHON = "/usr/bin/python3"  # one that uid 1000 can run


@pytest.fixture
def base() -> Iterator[Path]:
    """base/share is shared; the mount is at base/m/view, one level deeper, so a relative
    symlink the guest resolves lands elsewhere than the same link resolved on the host."""
    root = Path(tempfile.mkdtemp(prefix="share-test-"))
    root.chmod(0o755)  # uid 1000 reaches the mounts
    for sub in ("share/sub", "share/out", "m/view", "outside"):
        (root / sub).mkdir(parents=True)
    (root / "share" / "data.txt").write_text("hello")
    (root / "share" / "sub" / "deep.txt").write_text("deep")
    (root / "outside" / "secret.txt").write_text("OUTSIDE")
    yield root
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
              if line.split()[1].startswith(str(root))]
    for mount in sorted(mounts, reverse=True):  # never let rmtree walk into a mount
        share_mount.unmount(mount, lazy=True)
    shutil.rmtree(root)


@contextmanager
def mounted(base: Path, told: list[str], **settings: Any) -> Iterator[Path]:
    view = base / "m" / "view"
    with loopback_mount(ShareSettings(base / "share", **settings), str(view), told.append):
        yield view


def as_user(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SYSTEM_PYTHON, "-c", code, *args], user=1000, group=1000,
                          capture_output=True, text=True, timeout=20)


def test_reads_files_and_subfolders(base: Path) -> None:
    for i in range(50):
        (base / "share" / "sub" / f"part-{i}.csv").write_text(f"{i},x\n")
    with mounted(base, []) as view:
        assert sorted(os.listdir(view)) == ["data.txt", "out", "sub"]
        assert (view / "data.txt").read_text() == "hello"
        assert (view / "sub" / "deep.txt").read_text() == "deep"
        assert len(glob.glob(f"{view}/sub/*.csv")) == 50
        assert sorted(glob.glob("**/*.txt", root_dir=view, recursive=True)) == [
            "data.txt", "sub/deep.txt"]
        st = os.stat(view / "data.txt")
        assert (st.st_size, stat.S_IMODE(st.st_mode), st.st_uid) == (5, 0o444, 1000)
        assert stat.S_IMODE(os.stat(view / "sub").st_mode) == 0o555
        for no_xattrs in (lambda: os.getxattr(view / "data.txt", "user.x"),
                          lambda: os.listxattr(view / "data.txt")):
            with pytest.raises(OSError) as unsupported:
                no_xattrs()
            assert unsupported.value.errno == errno.ENOTSUP
        walked = [(Path(d).relative_to(view), sorted(f)) for d, _, f in os.walk(view)]
        assert (Path("sub"), sorted(["deep.txt", *[f"part-{i}.csv" for i in range(50)]])) \
            in walked


def test_a_20_mb_file_reads_back_byte_exact(base: Path) -> None:
    data = os.urandom(20 * MIB + 12345)
    (base / "share" / "big.bin").write_bytes(data)
    with mounted(base, []) as view:
        with open(view / "big.bin", "rb") as f:
            assert hashlib.sha256(f.read()).digest() == hashlib.sha256(data).digest()
        with open(view / "big.bin", "rb") as f:  # and at odd offsets
            f.seek(7 * MIB + 3)
            assert f.read(MIB + 5) == data[7 * MIB + 3:8 * MIB + 8]


def test_a_mount_made_ahead_answers_once_its_relay_is_released(base: Path) -> None:
    view = base / "m" / "view"
    told: list[str] = []
    with loopback_mount(ShareSettings(base / "share"), str(view), told.append,
                        held=True) as mount:
        device = share_mount.mounted_device(str(view))  # asks the held mount nothing
        assert not mount.server.initialized
        mount.relay.release()
        assert (view / "data.txt").read_text() == "hello"
        share_mount.set_readahead(device)
        dev = view.stat().st_dev
        assert device == f"{os.major(dev)}:{os.minor(dev)}"
        assert Path(f"/sys/class/bdi/{device}/read_ahead_kb").read_text().strip() == "1024"


def test_host_edits_show_up_within_a_second_or_so(base: Path) -> None:
    with mounted(base, []) as view:
        assert (view / "data.txt").read_text() == "hello"
        (base / "share" / "data.txt").write_text("edited on the host")
        (base / "share" / "later.txt").write_text("new")
        time.sleep(1.3)
        assert (view / "data.txt").read_text() == "edited on the host"
        assert (view / "later.txt").read_text() == "new"


def test_a_symlink_out_of_the_folder_is_not_followed_on_the_host(base: Path) -> None:
    (base / "share" / "link").symlink_to("../outside/secret.txt")
    (base / "share" / "dirlink").symlink_to("../outside")
    with mounted(base, []) as view:
        assert os.readlink(view / "link") == "../outside/secret.txt"
        assert stat.S_ISLNK(os.lstat(view / "link").st_mode)
        # The guest resolves it in its own tree (base/m/outside), never in the host's.
        with pytest.raises(FileNotFoundError):
            (view / "link").read_text()
        with pytest.raises(FileNotFoundError):
            os.listdir(view / "dirlink")


def test_dot_dot_cannot_climb_out_of_the_folder(base: Path) -> None:
    with mounted(base, []) as view:
        assert not os.path.exists(f"{view}/sub/../../outside/secret.txt")
        assert os.listdir(f"{view}/sub/..") == os.listdir(view)


class OpenWatch:
    """inotify on host objects: did anything open or read them?"""

    _IN_ACCESS, _IN_OPEN = 0x1, 0x20

    def __init__(self, *paths: Path) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        assert self.fd >= 0
        for path in paths:
            mask = self._IN_ACCESS | self._IN_OPEN
            assert libc.inotify_add_watch(self.fd, bytes(path), mask) >= 0

    def events(self) -> int:
        try:
            return len(os.read(self.fd, 65536)) // 16  # no names: each event is 16 bytes
        except BlockingIOError:
            return 0

    def close(self) -> None:
        os.close(self.fd)


@pytest.mark.parametrize("kind", ["fifo", "socket", "device"])
def test_special_files_are_invisible_and_never_opened(base: Path, kind: str) -> None:
    path = base / "share" / "special"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "socket":
        socket.socket(socket.AF_UNIX).bind(str(path))
    else:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # a /dev/null
    watch = OpenWatch(path)
    try:
        with mounted(base, []) as view:
            assert "special" not in os.listdir(view)
            assert not os.path.lexists(view / "special")
            for flags in (os.O_RDONLY | os.O_NONBLOCK, os.O_WRONLY | os.O_NONBLOCK):
                with pytest.raises(FileNotFoundError):
                    os.open(view / "special", flags)
        assert watch.events() == 0
        if kind != "socket":  # the watch itself works: an open here is seen
            os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
            assert watch.events() > 0
    finally:
        watch.close()


def test_excluded_secrets_are_invisible(base: Path) -> None:
    share = base / "share"
    for name in (".ssh/id_rsa", ".aws/credentials", "sub/.env", "server.pem", "tls.key",
                 "id_ed25519", ".netrc", "sub/.git-credentials"):
        (share / name).parent.mkdir(exist_ok=True)
        (share / name).write_text("SECRET")
    with mounted(base, []) as view:
        seen = glob.glob("**", root_dir=view, recursive=True, include_hidden=True)
        assert sorted(seen) == ["data.txt", "out", "sub", "sub/deep.txt"]
        for name in (".ssh", ".ssh/id_rsa", "sub/.env", "server.pem", ".netrc"):
            assert not os.path.lexists(view / name)


def test_writes_outside_writable_subfolders_are_refused(base: Path) -> None:
    told: list[str] = []
    with mounted(base, told, writable=("out",)) as view:
        attempts: list[Callable[[], object]] = [
            lambda: (view / "data.txt").write_text("x"), lambda: (view / "new.txt").write_text("x"),
            lambda: os.mkdir(view / "d"), lambda: os.unlink(view / "data.txt"),
            lambda: os.rename(view / "data.txt", view / "sub" / "d.txt"),
            lambda: os.chmod(view / "data.txt", 0o777)]
        for attempt in attempts:
            with pytest.raises(OSError) as refused:
                attempt()
            assert refused.value.errno == errno.EROFS
        user = as_user("open(__import__('sys').argv[1], 'w')", str(view / "data.txt"))
        assert "PermissionError" in user.stderr  # the guest user meets the modes first
    assert (base / "share" / "data.txt").read_text() == "hello"
    assert sorted(os.listdir(base / "share")) == ["data.txt", "out", "sub"]
    assert len(told) == 1 and "c.SandboxKernel.writable: 'out'" in told[0]


def test_writes_in_a_writable_subfolder_reach_the_host_within_the_quota(base: Path) -> None:
    told: list[str] = []
    with mounted(base, told, writable=("out",), write_quota_bytes=MIB) as view:
        (view / "out" / "result.txt").write_text("computed in the VM")
        os.makedirs(view / "out" / "a" / "b")
        os.rename(view / "out" / "result.txt", view / "out" / "a" / "b" / "r.txt")
        assert as_user("open(__import__('sys').argv[1], 'w').write('u')",
                       str(view / "out" / "user.txt")).returncode == 0
        fd = os.open(view / "out" / "fill.bin", os.O_WRONLY | os.O_CREAT, 0o644)
        with pytest.raises(OSError) as full:
            for _ in range(32):
                os.write(fd, b"\0" * 64 * 1024)
        os.close(fd)
        assert full.value.errno == errno.EDQUOT
    host = base / "share" / "out"
    assert (host / "a" / "b" / "r.txt").read_text() == "computed in the VM"
    assert (host / "user.txt").read_text() == "u"
    assert (host / "fill.bin").stat().st_size <= MIB
    assert told == ["Writes to the shared folder's writable subfolders reached their quota "
                    "(c.SandboxKernel.writable_quota_mb = 1)"]


def test_no_link_device_fifo_or_setuid_file_can_be_made(base: Path) -> None:
    with mounted(base, [], writable=("out",)) as view:
        out = view / "out"
        os.close(os.open(out / "x", os.O_WRONLY | os.O_CREAT, 0o6777))
        attempts: list[Callable[[], object]] = [
            lambda: os.symlink("/etc/shadow", out / "s"), lambda: os.link(out / "x", out / "l"),
            lambda: os.mkfifo(out / "f"),
            lambda: os.mknod(out / "n", 0o666 | stat.S_IFCHR, os.makedev(1, 3))]
        for attempt in attempts:
            with pytest.raises(OSError) as refused:
                attempt()
            assert refused.value.errno == errno.EPERM
        os.chmod(out / "x", 0o6755)
        os.mkdir(out / "d", 0o1777)
        os.chmod(out / "d", 0o3777)
    host = base / "share" / "out"
    assert sorted(os.listdir(host)) == ["d", "x"]
    for name in ("d", "x"):
        assert (host / name).stat().st_mode & 0o7000 == 0


def test_limits_fail_with_their_errno_and_name_their_setting(base: Path) -> None:
    share = base / "share"
    with open(share / "huge.bin", "wb") as f:
        f.truncate(2 * MIB + 100_000)
    (share / "four.bin").write_bytes(b"4" * 4 * MIB)
    (share / "two.bin").write_bytes(b"2" * 2 * MIB)
    for i in range(30):
        (share / "sub" / f"f{i}").write_text("")
    told: list[str] = []
    with mounted(base, told, max_file_bytes=4 * MIB - 1, max_read_bytes=3 * MIB,
                 max_files=20) as view:
        with pytest.raises(OSError) as too_big:
            (view / "four.bin").read_bytes()
        assert too_big.value.errno == errno.EFBIG
        for _ in range(3):  # once from the host, then from the guest's page cache
            assert len((view / "huge.bin").read_bytes()) == 2 * MIB + 100_000
        with pytest.raises(OSError) as too_much:
            (view / "two.bin").read_bytes()
        assert too_much.value.errno in (errno.EDQUOT, errno.EIO)  # page cache may say EIO
        codes = set()
        for i in range(30):
            try:
                os.stat(view / "sub" / f"f{i}")
            except OSError as e:
                codes.add(e.errno)
        assert codes == {errno.ENFILE}
    assert told[0] == ("four.bin is 4.2 MB, over the shared folder's largest-file limit "
                       "(c.SandboxKernel.share_max_file_mb = 4)")
    assert "(c.SandboxKernel.share_max_read_mb = 3)" in told[1]
    assert "(c.SandboxKernel.share_max_files = 20)" in told[2]
    assert len(told) == 3


def test_an_overlay_takes_the_vms_writes_and_a_bind_lets_writable_ones_through(
        base: Path) -> None:
    scratch, merged = base / "scratch", base / "merged"
    scratch.mkdir()
    merged.mkdir()
    with mounted(base, [], writable=("out",), overlaid=True) as view:
        share_mount.make_scratch(str(scratch), uid=1000, gid=1000)
        share_mount.mount_overlay(str(view), str(scratch), str(merged))
        try:
            (merged / "data.txt").write_text("changed in the VM")
            user = as_user("import sys; open(sys.argv[1], 'w').write('mine')",
                           str(merged / "sub" / "user.txt"))
            assert user.returncode == 0, user.stderr
            assert (merged / "data.txt").read_text() == "changed in the VM"
            assert (merged / "sub" / "user.txt").read_text() == "mine"
            share_mount.bind(str(view / "out"), str(merged / "out"))
            (merged / "out" / "kept.txt").write_text("for the host")
            share_mount.unmount(str(merged / "out"))
        finally:
            share_mount.unmount(str(merged))
            share_mount.unmount(str(scratch))
    assert (base / "share" / "data.txt").read_text() == "hello"
    assert not (base / "share" / "sub" / "user.txt").exists()
    assert (base / "share" / "out" / "kept.txt").read_text() == "for the host"
