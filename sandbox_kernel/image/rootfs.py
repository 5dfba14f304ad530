"""Assembles the guest root filesystem from .debs and wheels, then packs it read-only (erofs)."""

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sandbox_kernel.errors import ImageBuildError
from sandbox_kernel.image import apt

GUEST_UID = 1000
_MULTIARCH = "x86_64-linux-gnu"
_SLIM = ("usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale",
         "usr/share/lintian", "usr/share/bug", "usr/share/python3/debpython")


class GuestPython:
    """Runs the guest's own interpreter on the host through the guest's loader (no chroot)."""

    def __init__(self, root: Path, version: str) -> None:
        self.root = root
        self.version = version
        self.site_packages = root / f"usr/local/lib/python{version}/dist-packages"

    def command(self, *args: str) -> list[str]:
        libs = f"{self.root}/lib/{_MULTIARCH}:{self.root}/usr/lib/{_MULTIARCH}"
        return [str(self.root / "lib64/ld-linux-x86-64.so.2"), "--library-path", libs,
                str(self.root / f"usr/bin/python{self.version}"), *args]

    def run(self, *args: str) -> str:
        env = {"PYTHONHOME": str(self.root / "usr"), "PYTHONDONTWRITEBYTECODE": "1",
               "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        proc = subprocess.run(self.command(*args), env=env, capture_output=True, text=True,
                              check=False)
        if proc.returncode != 0:
            raise ImageBuildError(f"guest python failed: {proc.stderr[-2000:]}")
        return proc.stdout


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
                "home/user", "etc"):
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


INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


def matplotlib_draws_inline(rc: Path) -> None:
    """Debian's matplotlibrc picks TkAgg, which a VM without a display cannot show; IPython
    reads it for a bare ``%matplotlib``. The inline backend is what a notebook expects."""
    if not rc.exists():
        return
    lines = rc.read_text().splitlines(keepends=True)
    rc.write_text("".join(f"backend: {INLINE_BACKEND}\n" if line.startswith("backend:")
                          else line for line in lines))


def manylinux_platforms(glibc: str) -> list[str]:
    """Every manylinux tag a guest with this glibc ("2.36") runs, for pip's ``--platform``,
    which takes a ``manylinux_2_N`` tag for itself alone."""
    major, minor = (int(part) for part in glibc.split(".")[:2])
    if major != 2:
        raise ImageBuildError(f"unexpected glibc version in the guest: {glibc}")
    # manylinux2014 brings manylinux2010 and manylinux1, the legacy names, with it.
    return [f"manylinux_2_{n}_x86_64" for n in range(minor, 16, -1)] + ["manylinux2014_x86_64"]


def install_wheels(python: GuestPython, wheels: tuple[str, ...], cache: Path) -> None:
    """PyPI wheels built for the guest's interpreter, unpacked where Debian's Python looks first."""
    major, minor = python.version.split(".")
    glibc = python.run("-c", "import os; print(os.confstr('CS_GNU_LIBC_VERSION'))").split()[-1]
    platforms = [arg for tag in manylinux_platforms(glibc) for arg in ("--platform", tag)]
    cmd = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        "--no-deps", "--no-compile", "--only-binary=:all:", *platforms, "--implementation", "cp",
        "--python-version", python.version, "--abi", f"cp{major}{minor}",
        "--cache-dir", str(cache), "--target", str(python.site_packages), *wheels,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ImageBuildError(f"installing guest wheels failed:\n{proc.stderr[-2000:]}")
    shutil.rmtree(python.site_packages / "bin", ignore_errors=True)


def byte_compile(python: GuestPython) -> None:
    """The root is read-only in the guest, so every .pyc must exist before it boots."""
    dirs = [f"usr/lib/python{python.version}", "usr/lib/python3/dist-packages",
            str(python.site_packages.relative_to(python.root))]
    for sub in dirs:
        path = python.root / sub
        if path.is_dir():
            # Errors come from test files written for Python 2; they are harmless.
            subprocess.run(
                python.command("-m", "compileall", "-q", "-f", "-j", "0",
                               "--invalidation-mode", "unchecked-hash",
                               "-s", str(python.root), "-p", "/", str(path)),
                env={"PYTHONHOME": str(python.root / "usr")},
                capture_output=True, check=False,
            )


def slim(root: Path, python_version: str) -> None:
    for sub in _SLIM:
        shutil.rmtree(root / sub, ignore_errors=True)
    shutil.rmtree(root / f"usr/lib/python{python_version}/test", ignore_errors=True)


def pack_erofs(root: Path, out: Path, uuid: str) -> None:
    # Uncompressed: TCG makes every guest CPU cycle dear, and the host's page cache holds it.
    subprocess.run(["mkfs.erofs", "--all-root", "-T0", f"-U{uuid}", str(out), str(root)],
                   check=True, capture_output=True)
