"""Images the tests build, into this session's own folders: an images folder of its own (the
shared one is read-only to tests) and the session's cache. Only downloads are shared."""

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import SUITE_ROOT

HERE = Path(__file__).parent
SK = Path(sys.executable).parent / "sandbox-kernel"


@dataclass(frozen=True)
class Built:
    env: dict[str, str]
    images: Path

    def folder(self, name: str) -> Path:
        [folder] = [f for f in self.images.iterdir() if f.name.rpartition("-")[0] == name]
        return folder


def folders(name: str) -> dict[str, str]:
    """Environment for a builder with images and cache folders of its own, in the suite's
    cache (removed at the end of the session, whatever its outcome)."""
    root = SUITE_ROOT / "cache" / "test-images" / name
    return {**os.environ, "SANDBOX_KERNEL_IMAGES_DIR": str(root / "images"),
            "SANDBOX_KERNEL_CACHE_DIR": str(root / "cache")}


def sandbox_kernel(env: dict[str, str], *args: str, timeout: float = 600
                   ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SK), *args], env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


@pytest.fixture(scope="session")
def small_image() -> Iterator[Built]:
    env = folders("small")
    proc = sandbox_kernel(env, "image", "build", "--recipe", str(HERE / "small.toml"))
    assert proc.returncode == 0, proc.stderr[-4000:]
    yield Built(env, Path(env["SANDBOX_KERNEL_IMAGES_DIR"]))
