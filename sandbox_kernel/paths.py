"""Where sandbox-kernel keeps its caches and logs."""

from pathlib import Path

import platformdirs

APP = "sandbox-kernel"


def cache_dir() -> Path:
    return Path(platformdirs.user_cache_dir(APP))


def images_dir() -> Path:
    return cache_dir() / "images"


def debs_dir() -> Path:
    return cache_dir() / "debs"


def snapshots_dir() -> Path:
    return cache_dir() / "snapshots"


def logs_dir() -> Path:
    return Path(platformdirs.user_log_dir(APP))
