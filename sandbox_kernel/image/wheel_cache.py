"""Pinned wheels on disk: downloaded once into a folder named by their sha256 (several
caches may share it), and checked against their pin every time they are used."""

import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from sandbox_kernel.errors import ImageBuildError
from sandbox_kernel.image.apt import sha256_of
from sandbox_kernel.image.pip_tool import Pip, Target
from sandbox_kernel.image.wheels import Pin


def cached(pin: Pin, folder: Path) -> Path:
    return folder / pin.sha256 / pin.file_name


def host_pip() -> Pip:
    return Pip((sys.executable,), dict(os.environ))


def fetch(pins: Sequence[Pin], folder: Path, target: Target, pip: Pip | None = None) -> None:
    """Downloads the pins ``folder`` lacks, or holds with other contents."""
    missing = [pin for pin in pins if not _verified(pin, folder)]
    if not missing:
        return
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".part-", dir=folder) as tmp:
        requirements = Path(tmp) / "requirements.txt"
        requirements.write_text("".join(f"{pin.requirement}\n" for pin in missing))
        got = Path(tmp) / "got"
        proc = (pip or host_pip()).run(
            "download", "--no-deps", "--require-hashes", "--disable-pip-version-check",
            "--progress-bar", "off", "--dest", str(got), *target.options(),
            "-r", str(requirements))
        if proc.returncode != 0:
            raise ImageBuildError(f"downloading the wheels failed:\n{proc.stderr[-2000:]}")
        for pin in missing:
            _keep(pin, got / pin.file_name, folder)


def _keep(pin: Pin, fetched: Path, folder: Path) -> None:
    if not fetched.is_file() or sha256_of(fetched) != pin.sha256:
        raise ImageBuildError(f"the download of {pin.file_name} does not match its pinned "
                              f"sha256 {pin.sha256}; run the build again")
    place = cached(pin, folder)
    place.parent.mkdir(exist_ok=True)
    shutil.move(fetched, place.with_suffix(".part"))
    place.with_suffix(".part").replace(place)  # whole, even with another build beside it


def _verified(pin: Pin, folder: Path) -> bool:
    path = cached(pin, folder)
    if not path.is_file():
        return False
    if sha256_of(path) == pin.sha256:
        return True
    path.unlink()  # damaged, or not what its folder's name says
    return False


def files(pins: list[Pin], folder: Path) -> list[Path]:
    """The pins' files, each checked against its hash once more as it is used."""
    for pin in pins:
        if not _verified(pin, folder):
            raise ImageBuildError(f"{pin.file_name} is missing from {folder} or damaged; "
                                  "run the build again")
    return [cached(pin, folder) for pin in pins]
