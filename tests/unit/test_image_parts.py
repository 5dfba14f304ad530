import io
from dataclasses import replace
from pathlib import Path

from sandbox_kernel.image import rootfs
from sandbox_kernel.image.catalog import builtin
from sandbox_kernel.image.cpio import write_archive
from sandbox_kernel.image.linux import load_order, module_depends
from sandbox_kernel.image.store import ImagePaths, remove_older_images


def _ko(path: Path, depends: str) -> None:
    path.write_bytes(b"\x7fELF junk\0license=GPL\0depends=" + depends.encode() + b"\0name=x\0")


def test_modules_load_after_their_dependencies(tmp_path: Path) -> None:
    _ko(tmp_path / "virtio_ring.ko", "")
    _ko(tmp_path / "virtio.ko", "virtio_ring")
    _ko(tmp_path / "virtio_console.ko", "virtio,virtio_ring")
    _ko(tmp_path / "erofs.ko", "libcrc32c")
    _ko(tmp_path / "libcrc32c.ko", "")
    assert module_depends(tmp_path / "virtio_console.ko") == ["virtio", "virtio_ring"]
    names = [p.name for p in load_order(("virtio_console", "erofs", "builtin_one"), tmp_path)]
    assert names == ["virtio_ring.ko", "virtio.ko", "virtio_console.ko", "libcrc32c.ko",
                     "erofs.ko"]


def test_cpio_archive_is_newc_and_reproducible(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin/tool").write_bytes(b"abc")
    (tmp_path / "init").symlink_to("bin/tool")
    first, second = io.BytesIO(), io.BytesIO()
    write_archive(tmp_path, first)
    write_archive(tmp_path, second)
    data = first.getvalue()
    assert data == second.getvalue()
    assert data.startswith(b"070701") and b"TRAILER!!!" in data
    assert b"bin/tool\0" in data and len(data) % 4 == 0


def test_recipe_digest_changes_with_the_recipe() -> None:
    default = builtin("default")
    other = replace(default, debian=(*default.debian, "less"))
    assert default.digest() == replace(default).digest()
    assert other.digest() != default.digest()


def test_a_new_build_removes_the_same_recipes_older_images(tmp_path: Path) -> None:
    current, older, other_recipe, not_an_image = (
        tmp_path / "default-0123456789abcdef", tmp_path / "default-fedcba9876543210",
        tmp_path / "custom-0123456789abcdef", tmp_path / "default-notes")
    for folder in (current, older, other_recipe, not_an_image):
        folder.mkdir()
        (folder / "root.erofs").write_bytes(b"x")
    remove_older_images(ImagePaths(current))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [current.name, other_recipe.name, not_an_image.name])


def test_the_guest_gets_every_module_its_code_imports() -> None:
    # A module missing from the initramfs only shows in a VM, as a worker that dies at start.
    import ast

    from sandbox_kernel.image.initramfs import _PACKAGE_ROOT, guest_sources

    shipped = guest_sources()
    missing = set()
    for rel in shipped:
        tree = ast.parse((_PACKAGE_ROOT / rel).read_text())
        for node in ast.walk(tree):
            names = ([node.module or ""] if isinstance(node, ast.ImportFrom)
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            if isinstance(node, ast.ImportFrom) and node.module:
                names += [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                if not name.startswith("sandbox_kernel"):
                    continue
                parts = name.split(".")[1:]
                for candidate in ("/".join(parts) + ".py", "/".join([*parts, "__init__.py"])):
                    if (_PACKAGE_ROOT / candidate).is_file() and candidate not in shipped:
                        missing.add(candidate)
    assert not missing


def test_fixups_make_matplotlib_default_to_the_inline_backend(tmp_path: Path) -> None:
    rc = tmp_path / "matplotlibrc"
    rc.write_text("#### MATPLOTLIBRC\n##backend: Agg\nbackend: TkAgg\nlines.linewidth: 2\n")
    rootfs.matplotlib_draws_inline(rc)
    assert rc.read_text() == ("#### MATPLOTLIBRC\n##backend: Agg\n"
                              f"backend: {rootfs.INLINE_BACKEND}\nlines.linewidth: 2\n")


def test_wheels_may_be_built_for_any_glibc_up_to_the_guest_s() -> None:
    platforms = rootfs.manylinux_platforms("2.36")
    assert platforms[0] == "manylinux_2_36_x86_64" and "manylinux_2_28_x86_64" in platforms
    assert platforms[-2:] == ["manylinux_2_17_x86_64", "manylinux2014_x86_64"]
    assert rootfs.manylinux_platforms("2.17") == ["manylinux_2_17_x86_64", "manylinux2014_x86_64"]


def test_every_guest_wheel_is_pinned_once() -> None:
    names = [wheel.split("==")[0].lower().replace("_", "-") for wheel in builtin("default").pypi]
    assert all("==" in wheel for wheel in builtin("default").pypi)
    assert len(names) == len(set(names))
