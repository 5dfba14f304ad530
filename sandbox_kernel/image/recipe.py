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
    # Marked as installed while resolving, so that apt does not pull them in: matplotlib reaches
    # scipy, sympy and a C++ compiler through optional paths a sandbox does not need.
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


# The protocol models and ipywidgets need newer releases than Debian 12 ships.
GUEST_WHEELS = (
    "pydantic==2.14.4",
    "pydantic-core==2.50.5",
    "typing-extensions==4.16.0",
    "typing-inspection==0.4.5",
    "annotated-types==0.8.0",
    "comm==0.2.3",
    "ipywidgets==8.1.9",
    "widgetsnbextension==4.0.16",
    "jupyterlab-widgets==3.0.17",
    # Output chunks are the one bulk path out of the guest: orjson escapes them in less than
    # half of pydantic's time under TCG.
    "orjson==3.13.0",
)

HELD_BACK = (
    "python3-scipy",
    "python3-sympy",
    "python3-mpmath",
    "unicode-data",
    "python3-pil.imagetk",
    "python3-tk",
)

DEFAULT = Recipe(
    name="default",
    packages=(
        "python3",
        "python3-ipython",
        "python3-numpy",
        "python3-matplotlib",
        "python3-matplotlib-inline",
        "dash",
        "bash",  # for %%bash cells
        "coreutils",
        "procps",
    ),
    held_back=HELD_BACK,
    wheels=GUEST_WHEELS,
)

RECIPES = {r.name: r for r in (DEFAULT,)}
