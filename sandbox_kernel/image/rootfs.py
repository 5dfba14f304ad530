"""Assembles the guest root filesystem from .debs and wheels, then packs it read-only (erofs)."""

import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sandbox_kernel.errors import ImageBuildError
from sandbox_kernel.image import apt
from sandbox_kernel.image.pip_tool import Target

GUEST_UID = 1000
_MULTIARCH = "x86_64-linux-gnu"
_SLIM = ("usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale",
         "usr/share/lintian", "usr/share/bug", "usr/share/python3/debpython")


def extract_all(debs: list[Path], root: Path) -> None:
    root.mkdir(parents=True)
    # Debian 12 packages still ship an unmerged /usr; dpkg-deb replaces directory
    # symlinks, so nothing is pre-created here.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        list(pool.map(lambda deb: apt.extract(deb, root), debs))


def apply_fixups(root: Path) -> None:
    """What maintainer scripts would have done, for the few things that matter here."""
    libdir = root / "usr/lib" / _MULTIARCH
    for lib in ("blas", "lapack"):
        target = libdir / lib / f"lib{lib}.so.3"
        link = libdir / f"lib{lib}.so.3"
        if target.exists() and not link.exists():
            link.symlink_to(f"{lib}/lib{lib}.so.3")
    for sub in ("proc", "sys", "dev", "run", "tmp", "root", "mnt", "opt/sandbox",
                "opt/wheelhouse", "home/user", "etc"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "tmp").chmod(0o1777)
    etc = root / "etc"
    (etc / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\n"
        f"user:x:{GUEST_UID}:{GUEST_UID}:user:/home/user:/bin/sh\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    )
    (etc / "group").write_text(f"root:x:0:\nuser:x:{GUEST_UID}:\nnogroup:x:65534:\n")
    (etc / "hostname").write_text("sandbox\n")
    (etc / "hosts").write_text("127.0.0.1 localhost sandbox\n::1 localhost\n")
    sh = root / "bin/sh"
    if not sh.exists() and (root / "bin/dash").exists():
        sh.unlink(missing_ok=True)
        sh.symlink_to("dash")
    matplotlib_draws_inline(etc / "matplotlibrc")
    subprocess.run(["ldconfig", "-r", str(root)], check=True)
    # ldconfig's own cache of what it saw (inode numbers, times) differs in every build.
    (root / "var/cache/ldconfig/aux-cache").unlink(missing_ok=True)


INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


def matplotlib_draws_inline(rc: Path) -> None:
    """Debian's matplotlibrc picks TkAgg, which a VM without a display cannot show; IPython
    reads it for a bare ``%matplotlib``. The inline backend is what a notebook expects."""
    if not rc.exists():
        return
    lines = rc.read_text().splitlines(keepends=True)
    rc.write_text("".join(f"backend: {INLINE_BACKEND}\n" if line.startswith("backend:")
                          else line for line in lines))


def install_wheels(site_packages: Path, wheels: dict[Path, str], target: Target) -> None:
    """Unpacks the verified wheel files where Debian's Python looks first. pip finds them by
    name and version in a folder of their own (installed from a path, it would record that
    path in the image), ignores the host's pip settings, and checks their hashes once more."""
    if not wheels:
        return
    with tempfile.TemporaryDirectory(prefix="sandbox-wheels-") as tmp:
        links = Path(tmp) / "wheels"
        links.mkdir()
        pins = []
        for wheel, sha256 in wheels.items():
            (links / wheel.name).symlink_to(wheel)
            name, version = wheel.name.split("-")[:2]
            pins.append(f"{name}=={version} --hash=sha256:{sha256}\n")
        (Path(tmp) / "requirements.txt").write_text("".join(pins))
        cmd = [sys.executable, "-m", "pip", "install", "--isolated", "--quiet", "--no-index",
               "--find-links", str(links), "--no-deps", "--no-compile", "--require-hashes",
               *target.options(), "--target", str(site_packages),
               "-r", str(Path(tmp) / "requirements.txt")]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ImageBuildError(f"installing the guest's wheels failed:\n{proc.stderr[-2000:]}")
    shutil.rmtree(site_packages / "bin", ignore_errors=True)


def slim(root: Path, python_version: str) -> None:
    for sub in _SLIM:
        shutil.rmtree(root / sub, ignore_errors=True)
    shutil.rmtree(root / f"usr/lib/python{python_version}/test", ignore_errors=True)


def pack_erofs(root: Path, out: Path, uuid: str) -> None:
    # Uncompressed: TCG makes every guest CPU cycle dear, and the host's page cache holds it.
    subprocess.run(["mkfs.erofs", "--all-root", "-T0", f"-U{uuid}", str(out), str(root)],
                   check=True, capture_output=True)
