"""Installs a kernelspec for the sandbox kernel, with settings of its own if asked: several
(a small VM and a big one) can sit side by side in a launcher."""

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


def kernel_spec(display_name: str | None = None, memory_mb: int | None = None,
                cpus: int | None = None, image: str | None = None,
                wheelhouse: str | None = None) -> dict[str, object]:
    """kernel.json for this interpreter; the settings given become command-line options,
    which win over config files."""
    spec: dict[str, object] = json.loads((spec_source() / "kernel.json").read_text())
    argv = [sys.executable, *spec["argv"][1:]]  # type: ignore[index]
    labels = []
    if image is not None:
        argv.append(f"--SandboxKernel.image={image}")
        labels.append(image)
    if memory_mb is not None:
        argv.append(f"--SandboxKernel.memory_mb={memory_mb}")
        labels.append(f"{memory_mb} MB")
    if cpus is not None:
        argv.append(f"--SandboxKernel.cpus={cpus}")
        labels.append(f"{cpus} vCPU{'s' if cpus != 1 else ''}")
    if wheelhouse is not None:
        argv.append(f"--SandboxKernel.wheelhouse={wheelhouse}")
        labels.append("wheelhouse")
    spec["argv"] = argv
    if display_name is None and labels:
        display_name = f"Python 3 (sandbox VM, {', '.join(labels)})"
    if display_name is not None:
        spec["display_name"] = display_name
    return spec


def install(user: bool = False, prefix: str | None = None, sys_prefix: bool = False,
            name: str = DEFAULT_NAME, display_name: str | None = None,
            memory_mb: int | None = None, cpus: int | None = None,
            image: str | None = None, wheelhouse: str | None = None) -> str:
    if sys_prefix:
        prefix = sys.prefix
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / name
        shutil.copytree(spec_source(), folder)
        spec = kernel_spec(display_name, memory_mb, cpus, image, wheelhouse)
        (folder / "kernel.json").write_text(json.dumps(spec, indent=1) + "\n")
        return str(KernelSpecManager().install_kernel_spec(
            str(folder), name, user=user, prefix=prefix))
