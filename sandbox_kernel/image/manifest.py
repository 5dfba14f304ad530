"""An image's two records: ``manifest.json``, what the image is made of (the same for every
build from the same packages, as the image's other files are), and ``build.json``, when,
where and how fast this build was."""

import json
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox_kernel.image.apt import Deb, Package
from sandbox_kernel.image.recipe import Recipe
from sandbox_kernel.image.wheels import Pin


@dataclass
class Contents:
    recipe: Recipe
    python_version: str = ""
    python_magic: str = ""
    glibc: str = ""
    kernel_packages: dict[Package, Deb] = field(default_factory=dict)
    packages: dict[Package, Deb] = field(default_factory=dict)
    wheels: list[Pin] = field(default_factory=list)
    shadowed: list[str] = field(default_factory=list)  # wheels over Debian's own versions
    missing_libraries: dict[str, list[str]] = field(default_factory=dict)
    modules: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe.name,
            "digest": self.recipe.digest(),
            "made_from": self.recipe.describe(),
            "guest_python": self.python_version,
            "guest_python_magic": self.python_magic,
            "guest_glibc": self.glibc,
            "kernel_packages": {p.name: p.version for p in sorted(self.kernel_packages)},
            "packages": {p.name: p.version for p in sorted(self.packages)},
            "deb_sha256": {deb.file_name: deb.sha256 for deb in sorted(
                [*self.kernel_packages.values(), *self.packages.values()],
                key=lambda deb: deb.file_name)},
            "wheels": [pin.to_json() for pin in self.wheels],
            "wheels_over_debian": self.shadowed,
            "missing_libraries": self.missing_libraries,
            "preload": list(self.recipe.preload),
            "modules": self.modules,
        }


def write(folder: Path, contents: Contents, build_seconds: float, downloaded: int) -> None:
    (folder / "manifest.json").write_text(
        json.dumps(contents.to_json(), indent=1, sort_keys=True) + "\n")
    (folder / "build.json").write_text(json.dumps({
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": platform.node(),
        "build_seconds": round(build_seconds, 1),
        "downloaded_bytes": downloaded,
    }, indent=1) + "\n")


def read(folder: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((folder / "manifest.json").read_text())
    return result


def build_info(folder: Path) -> dict[str, Any]:
    try:
        result: dict[str, Any] = json.loads((folder / "build.json").read_text())
    except (OSError, ValueError):
        return {}
    return result
