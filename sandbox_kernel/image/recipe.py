"""What goes into a guest image; its hash names the image's folder."""

import hashlib
import json
from dataclasses import asdict, dataclass

# Bump when the builder changes what it makes from the same recipe.
# 3: Debian packages from a private apt configuration per suite, wheels resolved with their
# dependencies and pinned by hash, a reproducible root, the preload list in the manifest.
# 4: pip, and /opt/wheelhouse, where a wheelhouse from the host is mounted.
BUILD_FORMAT = 4

# What the guest agent itself needs of Debian, in every image: Python, /bin/sh, bash for
# %%bash cells, and the commands a notebook expects; and the C++ runtime, which manylinux
# wheels with C++ in them (numpy, matplotlib) expect of the system. Every Python package
# comes from PyPI: current releases, as in a local kernel, rather than Debian 12's.
BASE_DEBIAN = ("python3", "dash", "bash", "coreutils", "procps", "libstdc++6")

# What the guest agent needs of PyPI, in every image, pinned: IPython, whose internals the
# worker's shell builds on, and all it needs; matplotlib-inline, the worker's backend;
# ipywidgets; the protocol models, so that every image speaks the same protocol; orjson; pip.
BASE_REQUIREMENTS = (
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
    "ipywidgets==8.1.9",
    "comm==0.2.3",
    "widgetsnbextension==4.0.16",
    "jupyterlab-widgets==3.0.17",
    "pydantic==2.14.4",
    "pydantic-core==2.50.5",
    "typing-inspection==0.4.5",
    "annotated-types==0.8.0",
    # Output chunks are the one bulk path out of the guest: orjson escapes them in less than
    # half of pydantic's time under TCG.
    "orjson==3.13.0",
    # %pip, !pip and python -m pip install from a wheelhouse the host shares (no index).
    "pip==26.3",
    # The debugger (JupyterLab's panel): imported only when a frontend starts a debug session.
    "debugpy==1.8.22",
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
