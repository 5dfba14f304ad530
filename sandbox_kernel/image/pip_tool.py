"""pip, run by an interpreter of the builder's choosing, for the guest's Python and platform.

The resolver runs pip under the guest's own interpreter, so that pip counts the Python
packages Debian put in the image as installed; downloads and installs run under the host's
(see ``wheels``). Either way, pip's own options pin the guest's platform."""

import importlib.util
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.version import Version

from sandbox_kernel.errors import ImageBuildError

_PIP_AT_LEAST = Version("23.3")  # --dry-run with --platform and without --target


@dataclass(frozen=True)
class Target:
    """The guest's interpreter and C library, as wheel tags see them."""

    python: str  # "3.11"
    glibc: tuple[int, int]

    @property
    def abi(self) -> str:
        return "cp" + self.python.replace(".", "")

    def platforms(self) -> list[str]:
        major, minor = self.glibc
        tags = [f"manylinux_{major}_{m}_x86_64" for m in range(minor, 4, -1)]
        return [*tags, "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]

    def options(self) -> list[str]:
        """Binary wheels only: the image has no compiler, and is read-only in the guest."""
        platforms = [word for tag in self.platforms() for word in ("--platform", tag)]
        return ["--only-binary=:all:", "--implementation", "cp", "--python-version",
                self.python, "--abi", self.abi, *platforms]

    def describe(self) -> str:
        return f"{self.abi}, manylinux x86_64 with glibc {self.glibc[0]}.{self.glibc[1]}"


@dataclass(frozen=True)
class Pip:
    """pip under ``interpreter`` (an argv prefix), with ``env``."""

    interpreter: tuple[str, ...]
    env: dict[str, str]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [*self.interpreter, str(runner()), *args]
        return subprocess.run(cmd, env=self.env, capture_output=True, text=True, check=False)


def runner() -> Path:
    """pip's own launcher, which imports pip from where it is installed and nothing else
    from there: the guest's interpreter can run the host's pip without seeing its packages."""
    spec = importlib.util.find_spec("pip")
    installed = metadata.version("pip") if spec else "none"
    if spec is None or spec.origin is None or Version(installed) < _PIP_AT_LEAST:
        raise ImageBuildError(f"the builder needs pip {_PIP_AT_LEAST} or later (found "
                              f"{installed}): run `python -m pip install -U pip` in its venv")
    return Path(spec.origin).parent / "__pip-runner__.py"
