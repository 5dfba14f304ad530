"""The initramfs: busybox, the virtio modules in load order, /init and the guest agent's code."""

import hashlib
import importlib.util
import shutil
import tempfile
from importlib.resources import files
from pathlib import Path

import sandbox_kernel
from sandbox_kernel.image.cpio import write_archive

_PACKAGE_ROOT = Path(sandbox_kernel.__file__).parent
# What the guest needs of this package: the shared protocol, and the guest side whole.
_SHARED_SOURCES = ("__init__.py", "constants.py", "protocol.py", "lines.py", "cell_hash.py")


def guest_sources() -> list[str]:
    guest = sorted(f"guest/{path.name}" for path in (_PACKAGE_ROOT / "guest").glob("*.py"))
    return [*_SHARED_SOURCES, *guest]


# Commands for the worker, in /opt/sandbox/bin at the end of its PATH: `!pip`, which says
# what the image has or installs from a wheelhouse (see guest/packages.py).
_PIP = (b"#!/usr/bin/python3\nimport sys\n\nsys.path.insert(0, '/opt/sandbox')\n"
        b"from sandbox_kernel.guest.packages import main\n\nsys.exit(main(sys.argv[1:]))\n")
# Debian has python3 only; a notebook's `!python -m pip` expects python too.
_PYTHON = b'#!/bin/sh\nexec /usr/bin/python3 "$@"\n'
GUEST_COMMANDS = {"pip": _PIP, "pip3": _PIP, "python": _PYTHON}
# The image's pip, as the worker and what it starts run it (PIP_CONFIG_FILE): no index, no
# network; wheels from the host's wheelhouse; into the user's site folder, since the root is
# read-only and the home is not. That install touches nothing of Debian's, in a VM that lives
# as long as its kernel, so Debian's "externally managed" guard (PEP 668) does not apply.
PIP_CONFIG = b"""[global]
no-index = true
break-system-packages = true
find-links = /opt/wheelhouse
disable-pip-version-check = true
no-cache-dir = true

[install]
user = true
no-warn-script-location = true
progress-bar = off
"""
PIP_CONFIG_NAME = "pip.conf"


def _init_script() -> bytes:
    return files("sandbox_kernel.guest").joinpath("init").read_bytes()


def agent_digest() -> str:
    h = hashlib.sha256(_init_script())
    for rel in guest_sources():
        h.update(rel.encode() + b"\0" + (_PACKAGE_ROOT / rel).read_bytes())
    for name, script in sorted(GUEST_COMMANDS.items()):
        h.update(name.encode() + b"\0" + script)
    h.update(PIP_CONFIG_NAME.encode() + b"\0" + PIP_CONFIG)
    return h.hexdigest()[:16]


def build(out: Path, busybox: Path, modules: list[Path], guest_magic: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp)
        for sub in ("bin", "dev", "proc", "sys", "newroot", "lib/modules"):
            (tree / sub).mkdir(parents=True)
        shutil.copy(busybox, tree / "bin/busybox")
        for ko in modules:
            shutil.copy(ko, tree / "lib/modules" / ko.name)
        (tree / "modules.order").write_text("\n".join(ko.name for ko in modules) + "\n")
        init = tree / "init"
        init.write_bytes(_init_script())
        init.chmod(0o755)
        for rel in guest_sources():
            dest = tree / "sandbox/sandbox_kernel" / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(_PACKAGE_ROOT / rel, dest)
            # Pre-compile when the host's bytecode is the guest's; otherwise the guest compiles.
            if importlib.util.MAGIC_NUMBER == guest_magic:
                import py_compile

                py_compile.compile(
                    str(dest), cfile=importlib.util.cache_from_source(str(dest)),
                    dfile=f"/opt/sandbox/sandbox_kernel/{rel}", doraise=True,
                    invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
                )
        (tree / "sandbox/bin").mkdir()
        for name, script in GUEST_COMMANDS.items():
            command = tree / "sandbox/bin" / name
            command.write_bytes(script)
            command.chmod(0o755)
        (tree / "sandbox" / PIP_CONFIG_NAME).write_bytes(PIP_CONFIG)
        # Several VMs may start at once: each writes its own file, the rename is atomic.
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out.parent, suffix=".part", delete=False) as fh:
            write_archive(tree, fh.file)
        Path(fh.name).replace(out)
