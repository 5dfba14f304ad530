"""Confined resolution, with openat2 and with the component walk it falls back to: no
symlink is ever followed, not even one swapped in for a folder the guest already knows."""

import errno
import os
import stat
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest

from sandbox_kernel.share.folder import Folder
from sandbox_kernel.share.policy import DEFAULT_EXCLUDES


@pytest.fixture(params=[True, False], ids=["openat2", "walk"])
def folder(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Folder]:
    root = tmp_path / "share"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "deep.txt").write_text("deep")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_text("OUTSIDE")
    (root / "dirlink").symlink_to(tmp_path / "outside")
    (root / "filelink").symlink_to(tmp_path / "outside" / "secret.txt")
    os.mkfifo(root / "fifo")
    found = Folder(root, DEFAULT_EXCLUDES, openat2=request.param)
    yield found
    assert found.openat2 == request.param  # this kernel has openat2: no silent fallback
    found.close()


def _errno(call: Callable[[], object]) -> int:
    with pytest.raises(OSError) as failed:
        call()
    return failed.value.errno or 0


def test_paths_resolve_inside(folder: Folder) -> None:
    assert folder.lstat(b"sub/deep.txt").st_size == 4
    fd = folder.open_file(b"sub/deep.txt", os.O_RDONLY)
    assert os.pread(fd, 10, 0) == b"deep"
    os.close(fd)
    assert sorted(n for n, _, _ in folder.entries(b"")) == [b"dirlink", b"filelink", b"sub"]


def test_no_symlink_is_followed(folder: Folder) -> None:
    assert stat.S_ISLNK(folder.lstat(b"dirlink").st_mode)
    assert _errno(lambda: folder.lstat(b"dirlink/secret.txt")) in (errno.ENOTDIR, errno.ELOOP)
    assert _errno(lambda: folder.open_file(b"filelink", os.O_RDONLY)) == errno.EINVAL
    assert _errno(lambda: list(folder.entries(b"dirlink"))) in (errno.ENOTDIR, errno.ELOOP)
    assert folder.readlink(b"filelink").endswith(b"outside/secret.txt")


def test_a_folder_swapped_for_a_symlink_is_not_followed(folder: Folder, tmp_path: Path) -> None:
    assert folder.lstat(b"sub/deep.txt")
    root = tmp_path / "share"
    (root / "sub").rename(root / "gone")
    (root / "sub").symlink_to(tmp_path / "outside")
    assert _errno(lambda: folder.lstat(b"sub/secret.txt")) in (errno.ENOTDIR, errno.ELOOP)
    assert _errno(lambda: folder.open_file(b"sub/secret.txt", os.O_RDONLY)) in (
        errno.ENOTDIR, errno.ELOOP)


def test_special_files_are_not_there(folder: Folder) -> None:
    assert _errno(lambda: folder.lstat(b"fifo")) == errno.ENOENT
    assert _errno(lambda: folder.open_file(b"fifo", os.O_RDONLY)) == errno.ENOENT


def test_guest_names_are_checked(folder: Folder) -> None:
    for name in (b"", b".", b"..", b"a/b", b"a\0b"):
        assert _errno(partial(folder.check_name, name)) == errno.EINVAL
    assert _errno(lambda: folder.check_name(b"x" * 256)) == errno.ENAMETOOLONG
    assert _errno(lambda: folder.check_name(b"id_rsa")) == errno.ENOENT
    folder.check_name(b"notes.txt")
