"""``%pip`` in a VM with no network and no pip: a notebook's ``%pip install numpy`` is satisfied
by the image, and what the image lacks is named, rather than failing with "No module named
pip"."""

import re
import shlex
from importlib import metadata
from pathlib import Path

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# pip install options that take a value, which is not a requirement.
_WITH_VALUE = frozenset({"-c", "--constraint", "-e", "--editable", "-t", "--target",
                         "-i", "--index-url", "--extra-index-url", "-f", "--find-links",
                         "--prefix", "--root", "--platform", "--python-version",
                         "--implementation", "--abi", "--src", "--upgrade-strategy",
                         "--progress-bar", "--log", "--proxy", "--timeout", "--retries",
                         "--cache-dir", "--trusted-host", "--cert", "--client-cert"})
_NO_NETWORK = "The sandbox VM has no network, so %pip cannot install anything"


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed() -> dict[str, tuple[str, str]]:
    """Canonical name: (name as published, version), for every distribution in the image."""
    found = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found[_canonical(name)] = (name, dist.version)
    return found


def requirements(args: list[str]) -> list[str]:
    """The project names a ``pip install`` command line asks for."""
    names: list[str] = []
    words = iter(args)
    for word in words:
        if word in ("-r", "--requirement"):
            path = Path(next(words, ""))
            if not path.is_file():
                raise UsageError(f"{_NO_NETWORK}, and there is no requirements file {path}.")
            lines = (line.split("#")[0].strip() for line in path.read_text().splitlines())
            names += requirements([line for line in lines if line])
        elif word in _WITH_VALUE:
            next(words, None)
        elif not word.startswith("-") and (match := _NAME.match(word)):
            names.append(match.group(0).split("[")[0])
    return names


@magics_class
class PackageMagics(Magics):
    @line_magic
    def pip(self, line: str) -> None:
        """What ``pip install``, ``pip list`` and ``pip show`` would say about the image."""
        args = shlex.split(line)
        command = args[0] if args else ""
        have = installed()
        if command == "list":
            for name, version in sorted(have.values(), key=lambda nv: nv[0].lower()):
                print(f"{name:<40} {version}")
            return
        wanted = requirements(args[1:])
        if command == "show" and wanted:
            for name in wanted:
                if _canonical(name) not in have:
                    raise UsageError(f"Package(s) not found in the sandbox image: {name}")
                print("Name: {}\nVersion: {}".format(*have[_canonical(name)]))
            return
        if command != "install" or not wanted:
            raise UsageError(f"{_NO_NETWORK}; %pip install, %pip list and %pip show say what "
                             "the sandbox image already has.")
        missing = [name for name in wanted if _canonical(name) not in have]
        if missing:
            raise UsageError(f"{_NO_NETWORK}, and the sandbox image does not have: "
                             f"{', '.join(missing)}.")
        found = ", ".join("{} {}".format(*have[_canonical(name)]) for name in wanted)
        print(f"Already in the sandbox image: {found}. (The VM has no network; nothing was "
              "installed.)")
