"""Resolves and downloads Debian packages from the machine's own apt sources, without a chroot."""

import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sandbox_kernel.errors import ImageBuildError

_INST = re.compile(r"^Inst (\S+) \((\S+) ")


@dataclass(frozen=True, order=True)
class Package:
    name: str
    version: str

    @property
    def spec(self) -> str:
        return f"{self.name}={self.version}"

    def deb_glob(self) -> str:
        # apt-get download writes an epoch's colon as %3a.
        return f"{self.name}_{self.version.replace(':', '%3a')}_*.deb"


def _run(cmd: list[str], cwd: Path | None = None) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ImageBuildError(
            f"`{' '.join(cmd[:4])} …` failed ({proc.returncode}):\n{proc.stderr.strip()[-2000:]}\n"
            "Check that apt works (`apt-get update`) and that the package sources are reachable."
        )
    return proc.stdout


def _fake_status(held_back: tuple[str, ...]) -> str:
    """A dpkg status file claiming ``held_back`` is installed, at its candidate version."""
    entries = []
    for name in held_back:
        proc = subprocess.run(
            ["apt-cache", "show", "--no-all-versions", name],
            capture_output=True, text=True, check=False,
        )
        fields = dict(re.findall(r"^(Version|Architecture): (\S+)$", proc.stdout, re.M))
        if proc.returncode != 0 or "Version" not in fields:
            continue
        entries.append(
            f"Package: {name}\nStatus: install ok installed\nVersion: {fields['Version']}\n"
            f"Architecture: {fields['Architecture']}\nMaintainer: none\nDescription: held back\n"
        )
    return "\n".join(entries)


def resolve(packages: tuple[str, ...], held_back: tuple[str, ...] = ()) -> list[Package]:
    """The full dependency closure, as apt would install it onto an empty system."""
    with tempfile.NamedTemporaryFile("w", suffix=".status") as status:
        status.write(_fake_status(held_back))
        status.flush()
        out = _run([
            "apt-get", "-s", "-q",
            "-o", f"Dir::State::status={status.name}",
            "-o", "APT::Install-Recommends=false",
            "-o", "Debug::NoLocking=1",
            "install", *packages,
        ])
    found = sorted({Package(m[1], m[2]) for m in map(_INST.match, out.splitlines()) if m})
    if not found:
        raise ImageBuildError(f"apt resolved no packages for {packages}; run `apt-get update`.")
    return found


def download(packages: list[Package], dest: Path) -> dict[Package, Path]:
    """Fetches what is not in ``dest`` yet; returns each package's .deb."""
    dest.mkdir(parents=True, exist_ok=True)
    missing = [p for p in packages if not list(dest.glob(p.deb_glob()))]
    for start in range(0, len(missing), 50):
        _run(["apt-get", "download", "-q", *(p.spec for p in missing[start:start + 50])], cwd=dest)
    debs = {}
    for p in packages:
        hits = sorted(dest.glob(p.deb_glob()))
        if not hits:
            raise ImageBuildError(f"apt-get download did not produce {p.spec}")
        debs[p] = hits[0]
    return debs


def extract(deb: Path, root: Path) -> None:
    _run(["dpkg-deb", "-x", str(deb), str(root)])
