"""``sandbox-kernel image build``: resolve, download, assemble, pack; cached by recipe hash."""

import shutil
import tempfile
import time
from pathlib import Path

from sandbox_kernel import paths
from sandbox_kernel.errors import ImageBuildError
from sandbox_kernel.image import (
    apt,
    linkcheck,
    linux,
    manifest,
    rootfs,
    wheel_cache,
    wheels,
)
from sandbox_kernel.image.apt_config import AptConfig
from sandbox_kernel.image.guest_python import GuestPython
from sandbox_kernel.image.progress import console, counted, step
from sandbox_kernel.image.recipe import Recipe
from sandbox_kernel.image.store import (
    ImagePaths,
    build_initramfs,
    image_paths,
    remove_older_images,
)


class _Build:
    """One build's state: where it works, and what it has found and downloaded so far."""

    def __init__(self, recipe: Recipe, work: Path, out: ImagePaths) -> None:
        self.recipe, self.work, self.out = recipe, work, out
        self.apt = AptConfig.for_suite(recipe.suite)
        self.contents = manifest.Contents(recipe)
        self.downloaded = 0

    def debs(self, packages: list[apt.Package], label: str
             ) -> tuple[dict[apt.Package, apt.Deb], dict[apt.Package, Path]]:
        described = apt.describe(self.apt, packages)
        dest = paths.debs_dir()
        cached = {p for p, deb in described.items() if (dest / deb.file_name).exists()}
        found: dict[apt.Package, Path] = {}
        for batch in counted(f"Downloading {label}", list(described.items()), 10):
            found.update(apt.download(self.apt, dict(batch), dest))
        self.downloaded += sum(path.stat().st_size for p, path in found.items()
                               if p not in cached)
        return described, found

    def kernel(self) -> None:
        recipe = self.recipe
        closure = apt.resolve(self.apt, (recipe.kernel_package, recipe.initramfs_package))
        wanted = [p for p in closure
                  if (p.name.startswith("linux-image-") and p.name != recipe.kernel_package)
                  or p.name == recipe.initramfs_package]
        self.contents.kernel_packages, debs = self.debs(wanted, "the kernel and busybox")
        tree = self.work / "kernel"
        for deb in debs.values():
            apt.extract(deb, tree)
        vmlinuz = sorted((tree / "boot").glob("vmlinuz-*"))
        if not vmlinuz:
            raise ImageBuildError(f"{recipe.kernel_package} has no /boot/vmlinuz-*")
        linux.extract_vmlinux(vmlinuz[0], self.out.folder / "vmlinux.part")
        shutil.copy(tree / "bin/busybox", self.out.busybox)
        mods = linux.load_order(recipe.modules, tree / "lib/modules")
        self.out.modules.mkdir(exist_ok=True)
        for ko in mods:
            shutil.copy(ko, self.out.modules / ko.name)
        (self.out.modules / "order").write_text("\n".join(ko.name for ko in mods) + "\n")
        self.contents.modules = [ko.name for ko in mods]

    def root(self) -> None:
        recipe, root = self.recipe, self.work / "root"
        with step(f"Resolving Debian packages ({recipe.suite})"):
            packages = apt.resolve(self.apt, recipe.all_debian, recipe.debian_exclude)
        self.contents.packages, debs = self.debs(packages, "Debian packages")
        with step(f"Extracting {len(debs)} Debian packages"):
            rootfs.extract_all(sorted(debs.values()), root)
            rootfs.apply_fixups(root)
        version = next((p.version for p in packages if p.name == "python3"), "")
        python = GuestPython(root, ".".join(version.split(".")[:2]))
        self.wheels(python)
        python.check_preload(recipe.preload)
        with step("Byte-compiling the guest's Python"):
            python.byte_compile()
        rootfs.slim(root, python.version)
        with step("Packing the read-only root (erofs)"):
            digest = recipe.digest()
            rootfs.pack_erofs(root, self.out.folder / "root.erofs.part",
                              f"{digest[:8]}-0000-4000-8000-{digest[:12]}")

    def wheels(self, python: GuestPython) -> None:
        probe = python.probe()
        target = probe.target
        self.contents.python_version, self.contents.python_magic = (probe.full_version,
                                                                    probe.magic)
        self.contents.glibc = "{}.{}".format(*target.glibc)
        with step(f"Resolving PyPI requirements for the guest ({target.describe()})"):
            pins = wheels.resolve(python.pip(), target, self.recipe.requirements)
        debian = wheels.distributions(python.root / "usr/lib/python3/dist-packages")
        self.contents.shadowed = wheels.shadowed(pins, debian)
        if self.contents.shadowed:
            console.print("[yellow]Note:[/] these wheels come before Debian's own version on "
                          f"the guest's sys.path: {', '.join(self.contents.shadowed)}. Debian "
                          "packages built on them may not work with them: take those from "
                          "PyPI too (see `Images` in the README).")
        folder = paths.wheels_dir()
        cached = {pin for pin in pins if wheel_cache.cached(pin, folder).exists()}
        for batch in counted("Downloading wheels", pins, 5):
            wheel_cache.fetch(batch, folder, target)
        files = wheel_cache.files(pins, folder)
        self.downloaded += sum(path.stat().st_size for pin, path in zip(pins, files, strict=True)
                               if pin not in cached)
        with step(f"Installing {len(pins)} wheels"):
            rootfs.install_wheels(python.site_packages,
                                  {path: pin.sha256 for pin, path in zip(pins, files,
                                                                         strict=True)}, target)
        self.contents.wheels = pins
        self.contents.missing_libraries = linkcheck.missing_libraries(python.root,
                                                                      python.site_packages)
        if self.contents.missing_libraries:
            console.print("[yellow]Note:[/] the wheels need libraries the image lacks, so "
                          "some of their modules will not import: "
                          f"{linkcheck.describe(self.contents.missing_libraries)}. Add the "
                          "Debian packages that have them to the recipe's debian list.")


def build(recipe: Recipe, force: bool = False) -> ImagePaths:
    img = image_paths(recipe)
    if img.base_complete() and not force:
        if not img.initramfs().exists():
            build_initramfs(img)
        console.print(f"Image {recipe.name} is up to date: {img.folder}")
        return img
    started = time.monotonic()
    had_image = img.base_complete()
    try:
        job = _assemble(recipe, img)
    except BaseException:
        _clean_up(img, had_image)
        raise
    (img.folder / "vmlinux.part").replace(img.kernel)
    (img.folder / "root.erofs.part").replace(img.rootfs)
    manifest.write(img.folder, job.contents, time.monotonic() - started, job.downloaded)
    build_initramfs(img)
    remove_older_images(img)
    size = sum(p.stat().st_size for p in img.folder.rglob("*") if p.is_file())
    console.print(f"[bold green]Built[/] {img.folder} ({size / 2**20:.0f} MB, "
                  f"{time.monotonic() - started:.1f} s, {job.downloaded / 2**20:.0f} MB "
                  "downloaded)")
    return img


def _assemble(recipe: Recipe, img: ImagePaths) -> _Build:
    paths.cache_dir().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sandbox-image-", dir=paths.cache_dir()) as tmp:
        img.folder.mkdir(parents=True, exist_ok=True)
        job = _Build(recipe, Path(tmp), img)
        with step(f"Fetching the package lists of Debian {recipe.suite}"):
            job.apt.update()
        job.kernel()
        job.root()
    return job


def _clean_up(img: ImagePaths, had_image: bool) -> None:
    """A failed build leaves no half image: a forced rebuild keeps the image it had."""
    if had_image:
        for part in img.folder.glob("*.part"):
            part.unlink()
    else:
        shutil.rmtree(img.folder, ignore_errors=True)
