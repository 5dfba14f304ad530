"""What goes into a guest image; its hash names the cache folder."""

import hashlib
import json
from dataclasses import asdict, dataclass

# Bump when the builder changes what it makes from the same recipe.
BUILD_FORMAT = 2


@dataclass(frozen=True)
class Recipe:
    name: str
    packages: tuple[str, ...]
    # Marked as installed while resolving, so that apt does not pull them in: for what a
    # package reaches through optional paths a sandbox does not need.
    held_back: tuple[str, ...]
    # PyPI wheels for the guest's Python, installed without dependencies, so pin every one.
    wheels: tuple[str, ...]
    kernel_package: str = "linux-image-cloud-amd64"
    initramfs_package: str = "busybox-static"
    modules: tuple[str, ...] = (
        "virtio_mmio",
        "virtio_console",
        "virtio_blk",
        "virtio_rng",
        "erofs",
        "fuse",  # the shared folder
        "overlay",  # and the VM's writes over it
    )

    def digest(self) -> str:
        blob = json.dumps({"format": BUILD_FORMAT, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


# Every Python package the guest imports but the interpreter's own standard library: current
# releases, as in a local kernel (IPython 9, numpy 2, matplotlib 3.11), rather than Debian 12's.
# Installed without dependencies, so the list is a full resolution for the guest's Python, and
# nothing of Debian's may shadow them in importlib.metadata: %pip list reads it.
GUEST_WHEELS = (
    # IPython and what it needs.
    "ipython==9.19.1",
    "ipython-pygments-lexers==1.1.1",
    "traitlets==5.16.1",
    "jedi==0.20.1",
    "parso==0.8.7",
    "prompt-toolkit==3.0.53",
    "wcwidth==0.9.5",
    "pygments==2.21.0",
    "stack-data==0.6.3",
    "executing==2.3.0",
    "asttokens==3.0.2",
    "pure-eval==0.2.4",
    "pexpect==4.9.0",
    "ptyprocess==0.7.0",
    "psutil==7.2.2",
    "matplotlib-inline==0.2.2",
    "typing-extensions==4.16.0",
    # numpy and matplotlib, with what matplotlib needs.
    "numpy==2.4.6",
    "matplotlib==3.11.2",
    "contourpy==1.3.3",
    "cycler==0.12.1",
    "fonttools==4.69.1",
    "kiwisolver==1.5.1",
    "packaging==26.4",
    "pillow==13.0.0",
    "pyparsing==3.3.3",
    "python-dateutil==4.0.0",
    "tzdata==2026.6",
    # ipywidgets.
    "ipywidgets==8.1.9",
    "comm==0.2.3",
    "widgetsnbextension==4.0.16",
    "jupyterlab-widgets==3.0.17",
    # The protocol models.
    "pydantic==2.14.4",
    "pydantic-core==2.50.5",
    "typing-inspection==0.4.5",
    "annotated-types==0.8.0",
    # Output chunks are the one bulk path out of the guest: orjson escapes them in less than
    # half of pydantic's time under TCG.
    "orjson==3.13.0",
)

DEFAULT = Recipe(
    name="default",
    packages=(
        "python3",
        "libstdc++6",  # numpy's and matplotlib's extensions link it: manylinux leaves it out
        "dash",
        "bash",  # for %%bash cells
        "coreutils",
        "procps",
    ),
    held_back=(),
    wheels=GUEST_WHEELS,
)

RECIPES = {r.name: r for r in (DEFAULT,)}
