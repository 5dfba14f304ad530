"""``pip`` in a VM with no network, as the ``%pip`` magic and as a ``pip`` command for ``!pip``.

Without a wheelhouse, a notebook's ``pip install numpy`` is satisfied by the image, and what the
image lacks is named, rather than failing with pip's "no matching distribution". With one
(the host's folder of wheels, mounted at /opt/wheelhouse), the image's pip installs from it
into the user's site folder, as /opt/sandbox/pip.conf says, once the names asked for are known
to be there."""

import importlib
import os
import re
import site
import sys
from importlib import metadata
from pathlib import Path

from sandbox_kernel.constants import WHEELHOUSE_PATH

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# pip install options that take a value, which is not a requirement.
_WITH_VALUE = frozenset({"-c", "--constraint", "-e", "--editable", "-t", "--target",
                         "-i", "--index-url", "--extra-index-url", "-f", "--find-links",
                         "--prefix", "--root", "--platform", "--python-version",
                         "--implementation", "--abi", "--src", "--upgrade-strategy",
                         "--progress-bar", "--log", "--proxy", "--timeout", "--retries",
                         "--cache-dir", "--trusted-host", "--cert", "--client-cert"})


class NotInstallable(Exception):
    """What pip was asked for needs a network, or something the image does not have."""


def _no_network(command: str) -> str:
    return f"The sandbox VM has no network, so {command} cannot install anything"


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


def requirements(args: list[str], command: str = "pip") -> list[str]:
    """The project names a ``pip install`` command line asks for."""
    names: list[str] = []
    words = iter(args)
    for word in words:
        if word in ("-r", "--requirement"):
            path = Path(next(words, ""))
            if not path.is_file():
                raise NotInstallable(f"{_no_network(command)}, and there is no requirements "
                                     f"file {path}.")
            lines = (line.split("#")[0].strip() for line in path.read_text().splitlines())
            names += requirements([line for line in lines if line], command)
        elif word in _WITH_VALUE:
            next(words, None)
        elif word.endswith(".whl") or "/" in word:
            continue  # a wheel or a folder named by its path: pip says if it is missing
        elif not word.startswith("-") and (match := _NAME.match(word)):
            names.append(match.group(0))
    return names


def report(args: list[str], command: str = "pip") -> str:
    """What ``pip install``, ``pip list`` or ``pip show`` has to say about the image."""
    subcommand = args[0] if args else ""
    have = installed()
    if subcommand == "list":
        return "\n".join(f"{name:<40} {version}" for name, version in
                         sorted(have.values(), key=lambda nv: nv[0].lower()))
    wanted = requirements(args[1:], command)
    if subcommand == "show" and wanted:
        missing = [name for name in wanted if _canonical(name) not in have]
        if missing:
            raise NotInstallable(f"Package(s) not found in the sandbox image: "
                                 f"{', '.join(missing)}")
        return "\n---\n".join("Name: {}\nVersion: {}".format(*have[_canonical(name)])
                              for name in wanted)
    if subcommand != "install" or not wanted:
        raise NotInstallable(f"{_no_network(command)}; {command} install, {command} list and "
                             f"{command} show say what the sandbox image already has.")
    missing = [name for name in wanted if _canonical(name) not in have]
    if missing:
        raise NotInstallable(f"{_no_network(command)}, and the sandbox image does not have: "
                             f"{', '.join(missing)}.")
    found = ", ".join("{} {}".format(*have[_canonical(name)]) for name in wanted)
    return (f"Already in the sandbox image: {found}. (The VM has no network; nothing was "
            "installed.)")


def wheelhouse() -> Path | None:
    """The host's wheelhouse, when the host shares one with this VM."""
    return Path(WHEELHOUSE_PATH) if os.path.ismount(WHEELHOUSE_PATH) else None


def wheel_names(folder: Path) -> dict[str, str]:
    """Canonical name: name as written, for every wheel file in folder."""
    return {_canonical(name): name for name in
            (entry.name.split("-")[0] for entry in folder.iterdir() if entry.suffix == ".whl")}


def pip_command(args: list[str], folder: Path, command: str = "pip") -> list[str]:
    """The image's pip, to run with args: first, every project that ``pip install`` asks for
    must be in the wheelhouse or the image."""
    if args[:1] == ["install"]:
        wanted = requirements(args[1:], command)
        wheels = wheel_names(folder)
        known = installed().keys() | wheels.keys()
        missing = [name for name in wanted if _canonical(name) not in known]
        if missing:
            offer = ", ".join(sorted(wheels.values(), key=str.lower)) or "no wheels"
            raise NotInstallable(
                f"Not in the wheelhouse ({folder}, c.SandboxKernel.wheelhouse on the host) nor "
                f"in the sandbox image: {', '.join(missing)}. The wheelhouse has {offer}; "
                "add the wheels to that folder on the host and run this again.")
    return [sys.executable, "-m", "pip", *args]


def use_user_site() -> None:
    """pip installs into the user's site folder, which site.py left off sys.path when it did
    not exist at start: put it where site.py would have, before the image's packages, and
    have the next import look again."""
    user_site = site.getusersitepackages()
    if user_site in sys.path or not os.path.isdir(user_site):
        return
    at = next((i for i, entry in enumerate(sys.path) if entry.endswith("-packages")),
              len(sys.path))
    sys.path.insert(at, user_site)
    site.addsitedir(user_site)  # its .pth files
    importlib.invalidate_caches()


def main(argv: list[str]) -> int:
    """The guest's ``pip`` and ``pip3`` commands."""
    folder = wheelhouse()
    try:
        if folder is not None:
            command = pip_command(argv, folder)
            os.execv(command[0], command)
        print(report(argv))
    except NotInstallable as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    return 0
