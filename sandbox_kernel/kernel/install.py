"""Installs the ``sandbox-python`` kernelspec from the repository's ``kernelspec/`` folder."""

import json
import shutil
import sys
import tempfile
from importlib.resources import files
from pathlib import Path

from jupyter_client.kernelspec import KernelSpecManager

DEFAULT_NAME = "sandbox-python"


def spec_source() -> Path:
    return Path(str(files("sandbox_kernel.kernel").joinpath("resources")))


def install(user: bool = False, prefix: str | None = None, sys_prefix: bool = False,
            name: str = DEFAULT_NAME) -> str:
    if sys_prefix:
        prefix = sys.prefix
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / name
        shutil.copytree(spec_source(), folder)
        spec = json.loads((folder / "kernel.json").read_text())
        spec["argv"][0] = sys.executable  # the interpreter that has sandbox_kernel installed
        (folder / "kernel.json").write_text(json.dumps(spec, indent=1) + "\n")
        return str(KernelSpecManager().install_kernel_spec(
            str(folder), name, user=user, prefix=prefix))
