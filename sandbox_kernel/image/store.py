"""Where a built image lives, and whether it is complete."""

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox_kernel import paths
from sandbox_kernel.errors import ImageDamaged, ImageNotBuilt
from sandbox_kernel.image import catalog, initramfs, integrity
from sandbox_kernel.image.initramfs import agent_digest
from sandbox_kernel.image.recipe import Recipe

_KEPT_INITRAMFS = 4


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
    def build_record(self) -> Path:
        return self.folder / "build.json"

    @property
    def name(self) -> str:
        """The recipe's name: the folder's, less the recipe's digest."""
        if _is_image_folder(self.folder):
            return self.folder.name.rpartition("-")[0]
        return self.folder.name

    @property
    def busybox(self) -> Path:
        return self.folder / "busybox"

    @property
    def modules(self) -> Path:
        return self.folder / "modules"

    def initramfs(self, digest: str | None = None) -> Path:
        """The initramfs for this image and the agent's code: in the cache rather than the
        image's folder, so that a built image is never written again (test suites and other
        checkouts, each with their own agent, share it)."""
        return paths.initramfs_dir() / f"{self.folder.name}-{digest or agent_digest()}.cpio"

    def base_complete(self) -> bool:
        return all(p.exists() for p in (self.kernel, self.rootfs, self.manifest, self.busybox))

    def damage(self) -> str | None:
        """What is wrong with the built files, or None when they look whole."""
        return integrity.damage(self.rootfs, self.kernel)

    def read_manifest(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.manifest.read_text())
        return result

    def preload(self) -> list[str] | None:
        """The modules the snapshot imports, or None for an image whose recipe named none
        (built before recipes could)."""
        modules = self.read_manifest().get("preload")
        return [str(m) for m in modules] if isinstance(modules, list) else None

    @property
    def image_id(self) -> str:
        """Names everything the guest boots: the recipe's folder, the files built for it, and
        the agent's code. A snapshot holds the guest's page cache of the root, so a rebuilt
        root (which need not be the same bit for bit) must never meet an older snapshot."""
        return f"{self.folder.name}-{self.build_id()}-{agent_digest()}"

    def build_id(self) -> str:
        """Tells one build of the image's files from another, without reading them."""
        signature = [(st.st_ino, st.st_size, st.st_mtime_ns)
                     for st in (self.rootfs.stat(), self.kernel.stat())]
        return hashlib.sha256(repr(signature).encode()).hexdigest()[:12]


def image_paths(recipe: Recipe | str = "default") -> ImagePaths:
    """A built-in recipe's image is the one built from the recipe as this package ships it;
    another image is found by its name alone, since its recipe file may be anywhere."""
    if isinstance(recipe, str) and catalog.is_builtin(recipe):
        recipe = catalog.builtin(recipe, checked=False)
    if isinstance(recipe, Recipe):
        return ImagePaths(paths.images_dir() / f"{recipe.name}-{recipe.digest()}")
    built = [img for img in built_images() if img.name == recipe]
    return built[0] if built else ImagePaths(paths.images_dir() / recipe)


def _is_image_folder(folder: Path) -> bool:
    name, _, digest = folder.name.rpartition("-")
    return bool(name) and len(digest) == 16 and all(c in "0123456789abcdef" for c in digest)


def built_images() -> list[ImagePaths]:
    """Every complete image in the images folder, the newest first."""
    try:
        found = [ImagePaths(f) for f in paths.images_dir().iterdir() if _is_image_folder(f)]
    except FileNotFoundError:
        return []
    complete = [img for img in found if img.base_complete()]
    return sorted(complete, key=lambda img: img.manifest.stat().st_mtime, reverse=True)


def remove_older_images(keep: ImagePaths) -> None:
    """Deletes the images of the same recipe built from its earlier versions (some 400 MB
    each): a changed recipe, for example one more guest wheel, is a new folder. Running VMs
    keep the files they have open; their snapshots are pruned with the others."""
    for other in map(ImagePaths, keep.folder.parent.glob(f"{keep.name}-*")):
        if other != keep and _is_image_folder(other.folder) and other.name == keep.name:
            shutil.rmtree(other.folder, ignore_errors=True)


def build_initramfs(img: ImagePaths) -> Path:
    manifest = img.read_manifest()
    order = (img.modules / "order").read_text().split()
    target = img.initramfs()
    initramfs.build(target, img.busybox, [img.modules / name for name in order],
                    bytes.fromhex(manifest["guest_python_magic"]))
    _prune_initramfs(img, keep=target)
    return target


def _prune_initramfs(img: ImagePaths, keep: Path, limit: int = _KEPT_INITRAMFS) -> None:
    """Older agents' files are dead weight once their QEMU has read them, but another
    checkout may be about to start one: the newest few stay."""
    def mtime(path: Path) -> float:
        try:
            return path.stat().st_mtime
        except FileNotFoundError:
            return 0.0

    others = sorted((p for p in keep.parent.glob(f"{img.folder.name}-*.cpio") if p != keep),
                    key=mtime, reverse=True)
    for old in others[limit - 1:]:
        old.unlink(missing_ok=True)


def require_image(recipe: Recipe | str = "default") -> ImagePaths:
    """The built image, with an initramfs for the current agent code (made here if missing)."""
    img = image_paths(recipe)
    if not img.base_complete():
        raise ImageNotBuilt(img.name, img.folder)
    # Before any restore: a snapshot is not to blame for a damaged image, nor deleted for it.
    if (what := img.damage()) is not None:
        raise ImageDamaged(img.name, img.folder, what)
    if not img.initramfs().exists():
        build_initramfs(img)
    return img
