"""Where sandbox-kernel keeps its caches, logs and VM run folders. Each can be moved by an
environment variable: the test suite gives itself its own and shares only the built images."""

import os
import tempfile
from pathlib import Path

import platformdirs

APP = "sandbox-kernel"


def _moved(variable: str) -> Path | None:
    value = os.environ.get(variable)
    return Path(value) if value else None


def cache_dir() -> Path:
    return _moved("SANDBOX_KERNEL_CACHE_DIR") or Path(platformdirs.user_cache_dir(APP))


def images_dir() -> Path:
    return _moved("SANDBOX_KERNEL_IMAGES_DIR") or cache_dir() / "images"


def downloads_dir() -> Path:
    """Downloaded packages, each file named by what it holds (Debian's name, version and
    architecture; a wheel's sha256), so several caches can share one folder."""
    return _moved("SANDBOX_KERNEL_DOWNLOADS_DIR") or cache_dir()


def debs_dir() -> Path:
    return downloads_dir() / "debs"


def wheels_dir() -> Path:
    return downloads_dir() / "wheels"


def apt_dir() -> Path:
    """The builder's private apt configuration and package lists, one folder per suite."""
    return cache_dir() / "apt"


def initramfs_dir() -> Path:
    return cache_dir() / "initramfs"


def snapshots_dir() -> Path:
    return cache_dir() / "snapshots"


def state_dir() -> Path:
    return _moved("SANDBOX_KERNEL_STATE_DIR") or Path(platformdirs.user_state_dir(APP))


def logs_dir() -> Path:
    return state_dir() / "log"


def run_root() -> Path:
    """Where each VM gets its private run folder (sockets, console log)."""
    return _moved("SANDBOX_KERNEL_RUN_DIR") or Path(tempfile.gettempdir())
