"""What goes into a guest image; its hash names the image's folder."""

import hashlib
import json
from dataclasses import asdict, dataclass

# Bump when the builder changes what it makes from the same recipe.
# 3: Debian packages from a private apt configuration per suite, wheels resolved with their
# dependencies and pinned by hash, a reproducible root, the preload list in the manifest.
BUILD_FORMAT = 3

# What the guest agent itself needs of Debian, in every image: Python, IPython (the worker's
# shell), /bin/sh, bash for %%bash cells, and the commands a notebook expects; and the C++
# runtime, which manylinux wheels with C++ in them expect of the system.
BASE_DEBIAN = ("python3", "python3-ipython", "dash", "bash", "coreutils", "procps",
               "libstdc++6")

# What the guest agent needs of PyPI, in every image: the protocol models and ipywidgets need
# newer releases than Debian 12 ships. Pinned, so that every image speaks the same protocol.
BASE_REQUIREMENTS = (
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

DEFAULT_SUITE = "bookworm"


@dataclass(frozen=True)
class Recipe:
    """A recipe as written (``recipe_file`` reads the TOML); the base sets are added here."""

    name: str
    debian: tuple[str, ...] = ()
    pypi: tuple[str, ...] = ()
    # Imported by the snapshot's warm-up, so that a notebook's first import of them is instant.
    preload: tuple[str, ...] = ()
    suite: str = DEFAULT_SUITE
    # Marked as installed while resolving, so that apt does not pull them in (matplotlib
    # reaches scipy, sympy and a C++ compiler through optional paths a sandbox does not need).
    debian_exclude: tuple[str, ...] = ()
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

    @property
    def all_debian(self) -> tuple[str, ...]:
        return (*BASE_DEBIAN, *(p for p in self.debian if p not in BASE_DEBIAN))

    @property
    def requirements(self) -> tuple[str, ...]:
        return (*BASE_REQUIREMENTS, *self.pypi)

    def describe(self) -> dict[str, object]:
        """Everything the image is made from, as the manifest records it."""
        return {**asdict(self), "debian": list(self.all_debian),
                "pypi": list(self.requirements)}

    def digest(self) -> str:
        blob = json.dumps({"format": BUILD_FORMAT, **self.describe()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]
