"""Finding a built image by its name, listing images, kernelspecs bound to an image, and the
CLI's answers to a recipe it cannot build."""

import json
import os
from pathlib import Path

import pytest

from sandbox_kernel import cli
from sandbox_kernel.errors import ImageNotBuilt
from sandbox_kernel.image import catalog
from sandbox_kernel.image.store import ImagePaths, built_images, image_paths, require_image
from sandbox_kernel.kernel.install import kernel_spec


@pytest.fixture
def images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SANDBOX_KERNEL_IMAGES_DIR", str(tmp_path / "images"))
    return tmp_path / "images"


def fake_image(folder: Path, preload: list[str] | None = None, age: int = 0) -> ImagePaths:
    folder.mkdir(parents=True)
    for name in ("vmlinux", "root.erofs", "busybox"):
        (folder / name).write_bytes(b"x")
    body = {"packages": {}} if preload is None else {"packages": {}, "preload": preload}
    (folder / "manifest.json").write_text(json.dumps(body))
    os.utime(folder / "manifest.json", (1e9 - age, 1e9 - age))
    return ImagePaths(folder)


def test_an_image_of_a_user_recipe_is_found_by_its_name(images: Path) -> None:
    older = fake_image(images / "my-course-0123456789abcdef", age=100)
    newer = fake_image(images / "my-course-fedcba9876543210")
    fake_image(images / "my-course-extra-0123456789abcdef")
    assert image_paths("my-course") == newer != older
    assert image_paths("my-course-extra").name == "my-course-extra"
    assert [img.name for img in built_images()] == ["my-course", "my-course-extra",
                                                   "my-course"]


def test_a_built_in_image_is_the_one_its_shipped_recipe_makes(images: Path) -> None:
    default = catalog.builtin("default")
    fake_image(images / "default-0123456789abcdef")  # an older recipe's image
    assert image_paths("default").folder.name == f"default-{default.digest()}"
    assert not image_paths("default").base_complete()


def test_an_image_not_built_says_how_to_build_it(images: Path) -> None:
    with pytest.raises(ImageNotBuilt, match=r"'course' is not built.*image build --recipe "
                                            r"course.*image list"):
        require_image("course")
    with pytest.raises(ImageNotBuilt, match=r"'default' is not built.*`sandbox-kernel image "
                                            r"build` \("):
        require_image("default")


def test_the_manifest_carries_the_preload_list(images: Path) -> None:
    assert fake_image(images / "a-0123456789abcdef", ["pandas"]).preload() == ["pandas"]
    assert fake_image(images / "b-0123456789abcdef", []).preload() == []
    assert fake_image(images / "c-0123456789abcdef").preload() is None  # before recipes


def test_a_kernelspec_bound_to_an_image() -> None:
    spec = kernel_spec(image="scientific")
    assert spec["argv"][-1] == "--SandboxKernel.image=scientific"  # type: ignore[index]
    assert spec["display_name"] == "Python 3 (sandbox VM, scientific)"
    spec = kernel_spec(image="scientific", memory_mb=4096)
    assert spec["display_name"] == "Python 3 (sandbox VM, scientific, 4096 MB)"
    assert "--SandboxKernel.image" not in " ".join(kernel_spec()["argv"])  # type: ignore[arg-type]


def test_install_names_the_kernelspec_after_its_image(
        tmp_path: Path, images: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["install", "--prefix", str(tmp_path), "--image", "scientific"]) == 0
    spec = tmp_path / "share/jupyter/kernels/sandbox-scientific/kernel.json"
    assert "--SandboxKernel.image=scientific" in json.loads(spec.read_text())["argv"]
    assert "not built yet" in capsys.readouterr().err
    assert cli.main(["install", "--prefix", str(tmp_path), "--image", "Bad Name"]) == 2
    assert "is not 1 to 40 lowercase" in capsys.readouterr().err


def test_the_cli_tells_a_bad_recipe_without_a_traceback(
        tmp_path: Path, images: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\ndebain = ["less"]\n')
    assert cli.main(["image", "build", "--recipe", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"sandbox-kernel: {bad}: unknown key 'debain'")
    assert "Traceback" not in err


def test_image_list_with_nothing_built(images: Path, capsys: pytest.CaptureFixture[str]
                                       ) -> None:
    assert cli.main(["image", "list"]) == 0
    assert "No images built" in capsys.readouterr().out


def test_image_list_shows_each_image_with_its_snapshots(
        tmp_path: Path, images: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sandbox_kernel import image_list
    from sandbox_kernel.vm.snapshot_store import CaptureRam, SnapshotPaths

    monkeypatch.setenv("SANDBOX_KERNEL_CACHE_DIR", str(tmp_path / "cache"))
    img = fake_image(images / "course-0123456789abcdef")
    (img.folder / "build.json").write_text(
        json.dumps({"built_at": "2026-01-02T03:04:05Z", "build_seconds": 41.2}))
    for image_id, memory in ((img.image_id, 2048), ("another-image", 1024)):
        capture = CaptureRam.create()
        for part in (capture.ram, capture.state):
            part.write_bytes(b"x" * 2**20)
        about = json.dumps({"image": image_id, "machine": {"memory_mb": memory, "cpus": 4}})
        capture.commit(SnapshotPaths(f"key-{memory}", about=about))
    [row] = image_list.rows()
    assert (row.name, row.built) == ("course", "2026-01-02 03:04 (41 s)")
    assert row.snapshots == "1 ready (2048 MB/4 vCPUs; 2 MB)"
    fake_image(images / "default-0123456789abcdef")
    assert "default (outdated: build it again)" in {
        row.name for row in image_list.rows()}
