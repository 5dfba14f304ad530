"""The guest's own interpreter, run on the host through the guest's loader (no chroot): it
tells the guest's Python and C library versions, resolves wheels seeing what Debian put in
the image, and byte-compiles the image."""

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sandbox_kernel.errors import ImageBuildError
from sandbox_kernel.image.pip_tool import Pip, Target

_MULTIARCH = "x86_64-linux-gnu"
_PROBE = ("import importlib.util, json, os, sys; print(json.dumps({"
          "'version': '%d.%d' % sys.version_info[:2], 'full': sys.version.split()[0], "
          "'magic': importlib.util.MAGIC_NUMBER.hex(), "
          "'glibc': os.confstr('CS_GNU_LIBC_VERSION').split()[1]}))")


@dataclass(frozen=True)
class Probe:
    target: Target
    full_version: str
    magic: str


class GuestPython:
    def __init__(self, root: Path, version: str) -> None:
        self.root = root
        self.version = version
        # Where Debian's Python looks before its own dist-packages: wheels here win.
        self.site_packages = root / f"usr/local/lib/python{version}/dist-packages"

    def command(self, *args: str) -> list[str]:
        libs = f"{self.root}/lib/{_MULTIARCH}:{self.root}/usr/lib/{_MULTIARCH}"
        # -s: the host user's own site-packages are not the guest's.
        return [str(self.root / "lib64/ld-linux-x86-64.so.2"), "--inhibit-cache",
                "--library-path", libs, str(self.root / f"usr/bin/python{self.version}"),
                "-s", *args]

    def env(self, **more: str) -> dict[str, str]:
        # The host's settings for pip (index, proxy, certificates), none of its Python's.
        kept = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        return {**kept, "PYTHONHOME": str(self.root / "usr"), "PYTHONDONTWRITEBYTECODE": "1",
                **more}

    def run(self, *args: str, **env: str) -> str:
        proc = subprocess.run(self.command(*args), env=self.env(**env), capture_output=True,
                              text=True, check=False)
        if proc.returncode != 0:
            raise ImageBuildError(f"the guest's Python failed: {proc.stderr[-2000:]}")
        return proc.stdout

    def pip(self) -> Pip:
        return Pip(tuple(self.command()), self.env())

    def probe(self) -> Probe:
        found = json.loads(self.run("-c", _PROBE))
        major, minor = (int(part) for part in found["glibc"].split(".")[:2])
        return Probe(Target(found["version"], (major, minor)), found["full"], found["magic"])

    def byte_compile(self) -> None:
        """The root is read-only in the guest, so every .pyc must exist before it boots;
        unchecked hashes and a fixed hash seed make them the same in every build."""
        dirs = [f"usr/lib/python{self.version}", "usr/lib/python3/dist-packages",
                str(self.site_packages.relative_to(self.root))]
        for sub in dirs:
            path = self.root / sub
            if path.is_dir():
                # Errors come from test files written for Python 2; they are harmless.
                subprocess.run(
                    self.command("-m", "compileall", "-q", "-f", "-j", "0",
                                 "--invalidation-mode", "unchecked-hash",
                                 "-s", str(self.root), "-p", "/", str(path)),
                    env=self.env(PYTHONHASHSEED="0"), capture_output=True, check=False)

    def check_preload(self, modules: tuple[str, ...]) -> None:
        """A preload module the image does not have would only be skipped, silently, by the
        snapshot's warm-up: name it now. Only top-level names are looked up (finding
        ``a.b`` would run ``a``, which may expect the guest's paths)."""
        tops = sorted({module.split(".")[0] for module in modules})
        if not tops:
            return
        script = ("import importlib.util, sys; print(' '.join(m for m in sys.argv[1:] "
                  "if importlib.util.find_spec(m) is None))")
        missing = self.run("-c", script, *tops).split()
        if missing:
            raise ImageBuildError(
                f"the recipe preloads {', '.join(missing)}, which the image does not have: "
                "check the recipe's preload list, or add the package that provides it")

