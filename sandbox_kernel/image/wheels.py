"""Resolving a recipe's PyPI requirements to wheels for the guest, pinned by version and
sha256: pip's dry run, whose report names every file it would install."""

import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from packaging.utils import canonicalize_name

from sandbox_kernel.errors import ImageBuildError
from sandbox_kernel.image.pip_errors import explain
from sandbox_kernel.image.pip_tool import Pip, Target


@dataclass(frozen=True)
class Pin:
    """One wheel of the image, as its manifest records it."""

    name: str
    version: str
    file_name: str
    sha256: str
    requested: bool  # named by the recipe (or the base set), not pulled in by another

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Pin":
        return cls(**{key: data[key] for key in
                      ("name", "version", "file_name", "sha256", "requested")})

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version} --hash=sha256:{self.sha256}"


def resolve(pip: Pip, target: Target, requirements: tuple[str, ...]) -> list[Pin]:
    """What pip would install for ``requirements`` into the environment ``pip`` runs in (the
    guest's: what Debian provides there already is not installed again)."""
    if not requirements:
        return []
    with tempfile.TemporaryDirectory(prefix="sandbox-pip-") as tmp:
        report = Path(tmp) / "report.json"
        proc = pip.run("install", "--dry-run", "--no-color", "--progress-bar", "off",
                       "--disable-pip-version-check", "--report", str(report),
                       *target.options(), *requirements)
        if proc.returncode != 0:
            raise ImageBuildError(explain(proc.stdout + proc.stderr, pip, target))
        return pins_from_report(json.loads(report.read_text()))


def pins_from_report(report: dict[str, Any]) -> list[Pin]:
    pins = []
    for item in report.get("install", []):
        meta, info = item["metadata"], item["download_info"]
        sha256 = info.get("archive_info", {}).get("hashes", {}).get("sha256")
        file_name = unquote(urlsplit(info["url"]).path.rsplit("/", 1)[-1])
        if not sha256 or not file_name.endswith(".whl"):
            raise ImageBuildError(f"the package index gave no sha256 for {file_name}, so the "
                                  f"image cannot pin {meta['name']} {meta['version']}")
        pins.append(Pin(meta["name"], meta["version"], file_name, sha256,
                        bool(item.get("requested"))))
    return sorted(pins, key=lambda pin: pin.name.lower())


def distributions(site: Path) -> dict[str, str]:
    """The Python distributions a folder holds (Debian's dist-packages): name to version."""
    found: dict[str, str] = {}
    for info in [*site.glob("*.dist-info"), *site.glob("*.egg-info")]:
        name, _, version = info.name.rsplit(".", 1)[0].partition("-")
        found[canonicalize_name(name)] = version.split("-")[0]
    return found


def shadowed(pins: list[Pin], debian: dict[str, str]) -> list[str]:
    """The wheels that take the place of a Debian package's Python module (they come first on
    sys.path): what Debian built on that module may not work with the wheel's version."""
    return [f"{pin.name} {pin.version} (Debian has {debian[canonicalize_name(pin.name)]})"
            for pin in pins if canonicalize_name(pin.name) in debian]
