"""``sandbox-kernel image build``: resolve, download, assemble, pack; cached by recipe hash."""

import json
import platform
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from sandbox_kernel import paths
from sandbox_kernel.errors import ImageBuildError
from sandbox_kernel.image import apt, linux, rootfs
from sandbox_kernel.image.recipe import Recipe
from sandbox_kernel.image.store import (
    ImagePaths,
    build_initramfs,
    image_paths,
    remove_older_images,
)

console = Console(stderr=True)


@contextmanager
def _step(label: str) -> Iterator[None]:
    start = time.monotonic()
    with console.status(label):
        yield
    console.print(f"[green]✓[/] {label} ({time.monotonic() - start:.1f} s)")


def _download(packages: list[apt.Package]) -> dict[apt.Package, Path]:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    result: dict[apt.Package, Path] = {}
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("Downloading packages", total=len(packages))
        for start in range(0, len(packages), 10):
            batch = packages[start:start + 10]
            result.update(apt.download(batch, paths.debs_dir()))
            progress.advance(task, len(batch))
    console.print(f"[green]✓[/] {len(packages)} packages in {paths.debs_dir()}")
    return result


def _build_kernel(recipe: Recipe, work: Path, out: ImagePaths) -> list[apt.Package]:
    pkgs = [p for p in apt.resolve((recipe.kernel_package, recipe.initramfs_package))
            if (p.name.startswith("linux-image-") and p.name != recipe.kernel_package)
            or p.name == recipe.initramfs_package]
    debs = _download(pkgs)
    tree = work / "kernel"
    for deb in debs.values():
        apt.extract(deb, tree)
    vmlinuz = sorted((tree / "boot").glob("vmlinuz-*"))
    if not vmlinuz:
        raise ImageBuildError(f"{recipe.kernel_package} has no /boot/vmlinuz-*")
    linux.extract_vmlinux(vmlinuz[0], out.folder / "vmlinux.part")
    shutil.copy(tree / "bin/busybox", out.busybox)
    mods = linux.load_order(recipe.modules, tree / "lib/modules")
    out.modules.mkdir(exist_ok=True)
    for ko in mods:
        shutil.copy(ko, out.modules / ko.name)
    (out.modules / "order").write_text("\n".join(ko.name for ko in mods) + "\n")
    return pkgs


def _build_rootfs(recipe: Recipe, work: Path, out: ImagePaths) -> tuple[list[apt.Package], str]:
    with _step("Resolving packages"):
        pkgs = apt.resolve(recipe.packages, recipe.held_back)
    debs = _download(pkgs)
    root = work / "root"
    with _step(f"Extracting {len(debs)} packages"):
        rootfs.extract_all(list(debs.values()), root)
        rootfs.apply_fixups(root)
    version = next((p.version for p in pkgs if p.name == "python3"), "")
    py = rootfs.GuestPython(root, ".".join(version.split(".")[:2]))
    with _step("Installing guest wheels"):
        rootfs.install_wheels(py, recipe.wheels, paths.cache_dir() / "pip")
    with _step("Byte-compiling the guest's Python"):
        rootfs.byte_compile(py)
        magic = py.run("-c", "import importlib.util as u; print(u.MAGIC_NUMBER.hex())").strip()
    rootfs.slim(root, py.version)
    with _step("Packing the read-only root (erofs)"):
        uuid = f"{recipe.digest()[:8]}-0000-4000-8000-{recipe.digest()[:12]}"
        rootfs.pack_erofs(root, out.folder / "root.erofs.part", uuid)
    return pkgs, magic


def build(recipe: Recipe, force: bool = False) -> ImagePaths:
    img = image_paths(recipe)
    if img.base_complete() and not force:
        if not img.initramfs().exists():
            build_initramfs(img)
        console.print(f"Image {recipe.name} is up to date: {img.folder}")
        return img
    started = time.monotonic()
    img.folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sandbox-image-", dir=paths.cache_dir()) as tmp:
        work = Path(tmp)
        kernel_pkgs = _build_kernel(recipe, work, img)
        pkgs, magic = _build_rootfs(recipe, work, img)
    manifest = {
        "recipe": recipe.name,
        "digest": recipe.digest(),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": platform.node(),
        "guest_python_magic": magic,
        "kernel_packages": {p.name: p.version for p in kernel_pkgs},
        "packages": {p.name: p.version for p in pkgs},
        "wheels": list(recipe.wheels),
        "modules": (img.modules / "order").read_text().split(),
        "build_seconds": 0.0,
    }
    (img.folder / "vmlinux.part").replace(img.kernel)
    (img.folder / "root.erofs.part").replace(img.rootfs)
    manifest["build_seconds"] = round(time.monotonic() - started, 1)
    img.manifest.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    build_initramfs(img)
    remove_older_images(img)
    size = sum(p.stat().st_size for p in img.folder.rglob("*") if p.is_file())
    console.print(f"[bold green]Built[/] {img.folder} ({size / 2**20:.0f} MB, "
                  f"{manifest['build_seconds']} s)")
    return img
