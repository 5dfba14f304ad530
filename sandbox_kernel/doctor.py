"""``sandbox-kernel doctor``: what this host can run, and why."""

from sandbox_kernel.errors import SandboxError
from sandbox_kernel.image.manifest import build_info
from sandbox_kernel.image.store import built_images, image_paths
from sandbox_kernel.vm.config import VMConfig
from sandbox_kernel.vm.launch import choose_accelerator
from sandbox_kernel.vm.qemu import qemu_path, qemu_version
from sandbox_kernel.vm.snapshot_store import describe


async def report() -> tuple[bool, list[str]]:
    config = VMConfig()
    lines: list[str] = []
    ok = True
    try:
        lines.append(f"QEMU:        {qemu_version(config.qemu_binary)} "
                     f"({qemu_path(config.qemu_binary)})")
    except SandboxError as exc:
        return False, [f"QEMU:        MISSING - {exc}"]
    img = image_paths(config.image)
    if img.base_complete():
        manifest = img.read_manifest()
        size = sum(f.stat().st_size for f in img.folder.rglob("*") if f.is_file()) / 2**20
        built = build_info(img.folder).get("built_at", "at an unknown time")
        lines.append(f"Image:       {config.image}, built {built}, {size:.0f} MB "
                     f"at {img.folder}")
        lines.append(f"             {len(manifest['packages'])} Debian packages, "
                     f"{len(manifest.get('wheels', []))} wheels, "
                     f"kernel {', '.join(manifest['kernel_packages'])}")
        if (what := img.damage()) is not None:
            lines.append(f"             DAMAGED: {what}; run `sandbox-kernel image build "
                         "--force`")
            ok = False
    else:
        lines.append(f"Image:       NOT BUILT - run `sandbox-kernel image build` ({img.folder})")
        ok = False
    others = sorted({other.name for other in built_images()} - {config.image})
    if others:
        lines.append(f"             other images: {', '.join(others)} "
                     "(`sandbox-kernel image list`)")
    try:
        verdict = await choose_accelerator(config)
        cached = " (cached verdict)" if verdict.cached else ""
        lines.append(f"Accelerator: {verdict.accel.upper()} - {verdict.reason}{cached}")
    except SandboxError as exc:
        lines.append(f"Accelerator: unknown - {exc}")
        ok = False
    lines.append(f"Snapshots:   {describe(config)}")
    return ok, lines
