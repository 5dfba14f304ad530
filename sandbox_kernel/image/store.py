"""Where a built image lives, and whether it is complete."""

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox_kernel import paths
from sandbox_kernel.errors import ImageNotBuilt
from sandbox_kernel.image.initramfs import agent_digest
from sandbox_kernel.image.recipe import RECIPES, Recipe


@dataclass(frozen=True)
class ImagePaths:
    folder: Path

    @property
    def kernel(self) -> Path:
        return self.folder / "vmlinux"

    @property
    def rootfs(self) -> Path:
        return self.folder / "root.erofs"

    @property
    def manifest(self) -> Path:
        return self.folder / "manifest.json"

    @property
    def busybox(self) -> Path:
        return self.folder / "busybox"

    @property
    def modules(self) -> Path:
        return self.folder / "modules"

    def initramfs(self, digest: str | None = None) -> Path:
        return self.folder / f"initramfs-{digest or agent_digest()}.cpio"

    def base_complete(self) -> bool:
        return all(p.exists() for p in (self.kernel, self.rootfs, self.manifest, self.busybox))

    def read_manifest(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.manifest.read_text())
        return result

    @property
    def image_id(self) -> str:
        """Names everything the guest boots: the recipe's folder plus the agent's code."""
        return f"{self.folder.name}-{agent_digest()}"


def image_paths(recipe: Recipe | str = "default") -> ImagePaths:
    if isinstance(recipe, str):
        recipe = RECIPES[recipe]
    return ImagePaths(paths.images_dir() / f"{recipe.name}-{recipe.digest()}")


def remove_older_images(keep: ImagePaths) -> None:
    """Deletes the images of the same recipe built from its earlier versions (some 400 MB
    each): a changed recipe, for example one more guest wheel, is a new folder. Running VMs
    keep the files they have open; their snapshots are pruned with the others."""
    name, _, digest = keep.folder.name.rpartition("-")
    for other in keep.folder.parent.glob(f"{name}-*"):
        other_name, _, other_digest = other.name.rpartition("-")
        if (other != keep.folder and other_name == name and len(other_digest) == len(digest)
                and all(c in "0123456789abcdef" for c in other_digest)):
            shutil.rmtree(other, ignore_errors=True)


def require_image(recipe: Recipe | str = "default") -> ImagePaths:
    """The built image, with an initramfs for the current agent code (made here if missing)."""
    img = image_paths(recipe)
    if not img.base_complete():
        raise ImageNotBuilt(f"nothing at {img.folder}")
    if not img.initramfs().exists():
        from sandbox_kernel.image.builder import build_initramfs

        build_initramfs(img)
    return img
