"""Resolves, downloads and unpacks Debian packages with the builder's private apt
configuration (``apt_config``), without a chroot."""

import hashlib
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sandbox_kernel.errors import ImageBuildError
from sandbox_kernel.image.apt_config import AptConfig

_INST = re.compile(r"^Inst (\S+) \((\S+) ")
# apt-get --print-uris: 'url' file_name size SHA256:hex
_URI = re.compile(r"^'[^']+' (\S+) \d+ SHA256:([0-9a-f]{64})$")
_BATCH = 50


@dataclass(frozen=True, order=True)
class Package:
    name: str
    version: str

    @property
    def spec(self) -> str:
        return f"{self.name}={self.version}"


@dataclass(frozen=True)
class Deb:
    """A package's file as the archive's signed index describes it."""

    file_name: str
    sha256: str


def _fake_status(apt: AptConfig, excluded: tuple[str, ...]) -> str:
    """A dpkg status file claiming ``excluded`` is installed, at its candidate version."""
    entries = []
    for name in excluded:
        proc = subprocess.run(["apt-cache", "show", "--no-all-versions", name], env=apt.env(),
                              capture_output=True, text=True, check=False)
        fields = dict(re.findall(r"^(Version|Architecture): (\S+)$", proc.stdout, re.M))
        if proc.returncode != 0 or "Version" not in fields:
            continue
        entries.append(
            f"Package: {name}\nStatus: install ok installed\nVersion: {fields['Version']}\n"
            f"Architecture: {fields['Architecture']}\nMaintainer: none\nDescription: excluded\n"
        )
    return "\n".join(entries)


def resolve(apt: AptConfig, packages: tuple[str, ...],
            excluded: tuple[str, ...] = ()) -> list[Package]:
    """The full dependency closure, as apt would install it onto an empty system."""
    with tempfile.NamedTemporaryFile("w", suffix=".status") as status:
        status.write(_fake_status(apt, excluded))
        status.flush()
        proc = subprocess.run(["apt-get", "-s", "-q", "-o", f"Dir::State::status={status.name}",
                               "install", *packages], env=apt.env(), capture_output=True,
                              text=True, check=False)
    if proc.returncode != 0:
        raise ImageBuildError(_unresolvable(apt.suite, proc.stdout + proc.stderr))
    out = proc.stdout
    found = sorted({Package(m[1], m[2]) for m in map(_INST.match, out.splitlines()) if m})
    if not found:
        raise ImageBuildError(f"apt resolved no packages for {packages} in {apt.suite}")
    return found


_NOT_THERE = (re.compile(r"Unable to locate package (\S+)"),
              re.compile(r"Package '?(\S+?)'? has no installation candidate"),
              re.compile(r"Version '\S+' for '(\S+)' was not found"))


def _unresolvable(suite: str, output: str) -> str:
    """apt's reasons, less its noise: a package the suite lacks, or broken dependencies."""
    missing = [m for pattern in _NOT_THERE for m in pattern.findall(output)]
    if missing:
        return (f"Debian {suite} has no package (or version) {', '.join(missing)}: check the "
                "recipe's debian list (`apt-cache search` on a Debian machine finds names).")
    reasons = [line.strip() for line in output.splitlines()
               if line.startswith(("E:", " ")) and line.strip()]
    return (f"apt cannot install the recipe's Debian packages together ({suite}):\n  "
            + "\n  ".join(reasons[-15:]) + "\nChange the recipe's debian or debian_exclude list.")


def describe(apt: AptConfig, packages: list[Package]) -> dict[Package, Deb]:
    """Each package's file name and sha256, from the suite's signed index."""
    found: dict[Package, Deb] = {}
    for start in range(0, len(packages), _BATCH):
        batch = packages[start:start + _BATCH]
        out = apt.run("apt-get", "download", "--print-uris", *(p.spec for p in batch))
        found.update(parse_uris(out, batch))
    return found


def parse_uris(out: str, packages: list[Package]) -> dict[Package, Deb]:
    """apt lists the files in an order of its own: each is matched to its package by the
    name and version in its file name (with an epoch's colon written %3a)."""
    listed = {}
    for match in filter(None, map(_URI.match, out.splitlines())):
        name, version = match[1].split("_")[:2]
        listed[Package(name, version.replace("%3a", ":"))] = Deb(match[1], match[2])
    missing = [p.spec for p in packages if p not in listed]
    if missing:
        raise ImageBuildError(f"apt gave no file for {', '.join(missing)}:\n{out[-2000:]}")
    return {p: listed[p] for p in packages}


def sha256_of(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def download(apt: AptConfig, wanted: dict[Package, Deb], dest: Path) -> dict[Package, Path]:
    """Fetches what ``dest`` lacks, into a folder of its own first (several builds may share
    ``dest``), and checks every file against the index's sha256, cached ones too."""
    dest.mkdir(parents=True, exist_ok=True)
    missing = [p for p, deb in wanted.items()
               if not (dest / deb.file_name).is_file()
               or sha256_of(dest / deb.file_name) != deb.sha256]
    with tempfile.TemporaryDirectory(prefix=".part-", dir=dest) as tmp:
        for start in range(0, len(missing), _BATCH):
            apt.run("apt-get", "download", "-q", *(p.spec for p in missing[start:start + _BATCH]),
                    cwd=Path(tmp))
        for package in missing:
            deb = wanted[package]
            fetched = Path(tmp) / deb.file_name
            if not fetched.is_file() or sha256_of(fetched) != deb.sha256:
                raise ImageBuildError(f"the download of {deb.file_name} does not match the "
                                      "archive's index; run the build again")
            shutil.move(fetched, dest / deb.file_name)
    return {p: dest / deb.file_name for p, deb in wanted.items()}


def extract(deb: Path, root: Path) -> None:
    proc = subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        raise ImageBuildError(f"dpkg-deb could not unpack {deb.name}: {proc.stderr[-1000:]}")
