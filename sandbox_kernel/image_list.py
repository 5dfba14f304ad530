"""``sandbox-kernel image list``: each built image, its size, when it was built, and its
memory snapshots."""

from dataclasses import dataclass

from sandbox_kernel.image import catalog, manifest
from sandbox_kernel.image.store import ImagePaths, built_images, image_paths
from sandbox_kernel.vm.snapshot_store import snapshots_of


@dataclass(frozen=True)
class ImageRow:
    name: str
    size_mb: float
    built: str
    snapshots: str


def _size_mb(img: ImagePaths) -> float:
    return sum(f.stat().st_size for f in img.folder.rglob("*") if f.is_file()) / 2**20


def _built(img: ImagePaths) -> str:
    info = manifest.build_info(img.folder)
    when = str(info.get("built_at", "unknown")).replace("T", " ")[:16]
    took = f" ({info['build_seconds']:.0f} s)" if "build_seconds" in info else ""
    return f"{when}{took}" if info else "unknown"


def _snapshots(img: ImagePaths) -> str:
    snaps = snapshots_of(img)
    if not snaps:
        return "none yet (a kernel's first start takes one)"
    sizes = []
    for snap in snaps:
        machine = snap.read_about().get("machine", {})
        sizes.append(f"{machine.get('memory_mb', '?')} MB/{machine.get('cpus', '?')} vCPUs")
    total = sum(snap.disk_bytes() for snap in snaps) / 2**20
    return f"{len(snaps)} ready ({', '.join(sizes)}; {total:.0f} MB)"


def rows() -> list[ImageRow]:
    found = []
    for img in built_images():
        name = img.name
        if catalog.is_builtin(name) and image_paths(name) != img:
            name += " (outdated: build it again)"
        found.append(ImageRow(name, _size_mb(img), _built(img), _snapshots(img)))
    return found
