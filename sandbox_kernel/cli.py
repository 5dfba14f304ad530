"""``sandbox-kernel``: exec, doctor, image build, image list, install."""

import argparse
import asyncio
import sys
from pathlib import Path

from sandbox_kernel import protocol as p
from sandbox_kernel.errors import SandboxError


async def _exec(code: str) -> int:
    from sandbox_kernel.vm import running_vm

    async with running_vm() as vm:
        async for event in vm.execute(code):
            match event:
                case p.OutputChunk(name="stdout", text=text):
                    sys.stdout.write(text)
                    sys.stdout.flush()
                case p.OutputChunk(text=text):
                    sys.stderr.write(text)
                case p.ExecuteResult(data=data) | p.DisplayData(data=data):
                    print(data.get("text/plain", ""))
                case p.InputRequest():
                    print("input() is not available in `sandbox-kernel exec`", file=sys.stderr)
                case p.ExecuteReply(status="ok"):
                    return 0
                case p.ExecuteReply(ename=ename, evalue=evalue, traceback=tb):
                    print("\n".join(tb) or f"{ename}: {evalue}", file=sys.stderr)
                    return 1
                case p.AgentError(error_type=kind, message=message):
                    print(f"sandbox agent error: {kind}: {message}", file=sys.stderr)
                    return 1
    return 1


async def _boot_times(runs: int) -> int:
    """Cold boot to agent-ready, and snapshot restore to agent-ready, median of ``runs``."""
    import statistics
    import time
    from dataclasses import replace

    from sandbox_kernel.vm import VMConfig, start_vm

    for label, config in (("cold boot", VMConfig(snapshots=False)),
                          ("snapshot restore", replace(VMConfig(), snapshots=True))):
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            vm = await start_vm(config)
            times.append(time.perf_counter() - started)
            kind = vm.started_from
            await vm.stop()
        print(f"{label:17} to agent-ready: median {statistics.median(times):.2f} s "
              f"(runs: {', '.join(f'{t:.2f}' for t in times)}; last was {kind}; accel {vm.accel})")
    return 0


async def _doctor() -> int:
    from sandbox_kernel.doctor import report

    ok, lines = await report()
    print("\n".join(lines))
    return 0 if ok else 1


def _image_build(recipe: str, force: bool) -> int:
    from sandbox_kernel.image.builder import build
    from sandbox_kernel.image.catalog import find

    build(find(recipe), force=force)
    return 0


def _image_list() -> int:
    from rich.console import Console
    from rich.table import Table

    from sandbox_kernel import paths
    from sandbox_kernel.image_list import rows

    found = rows()
    if not found:
        print(f"No images built in {paths.images_dir()}: run `sandbox-kernel image build`.")
        return 0
    table = Table("image", "size", "built (UTC)", "snapshots",
                  caption=f"in {paths.images_dir()}; snapshots in {paths.snapshots_dir()}")
    for row in found:
        table.add_row(row.name, f"{row.size_mb:.0f} MB", row.built, row.snapshots)
    Console().print(table)
    return 0


def _install(args: argparse.Namespace) -> int:
    from sandbox_kernel.kernel.install import install

    name = args.name or (f"sandbox-{args.image}" if args.image not in (None, "default")
                         else "sandbox-python")
    if args.image is not None:
        _check_image(args.image)
    wheelhouse = None
    if args.wheelhouse is not None:  # absolute: the spec serves notebooks in any folder
        wheelhouse = str(Path(args.wheelhouse).expanduser().resolve())
        if not Path(wheelhouse).is_dir():
            raise SystemExit(f"sandbox-kernel: --wheelhouse {wheelhouse} is not a folder")
    where = install(user=args.user, prefix=args.prefix, sys_prefix=args.sys_prefix,
                    name=name, display_name=args.display_name, memory_mb=args.memory,
                    cpus=args.cpus, image=args.image, wheelhouse=wheelhouse)
    print(f"Installed kernelspec {name} in {where}")
    return 0


def _check_image(image: str) -> None:
    from sandbox_kernel.image.catalog import is_builtin
    from sandbox_kernel.image.recipe_file import check_name
    from sandbox_kernel.image.store import image_paths

    check_name(image)
    if not image_paths(image).base_complete():
        recipe = image if is_builtin(image) else f"path/to/{image}.toml"
        print(f"sandbox-kernel: note: the image {image!r} is not built yet; its kernels will "
              f"not start until it is (`sandbox-kernel image build --recipe {recipe}`)",
              file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sandbox-kernel", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("exec", help="run Python code in a fresh sandbox VM")
    run.add_argument("code")
    sub.add_parser("doctor", help="check QEMU, the accelerator, the image and snapshots")
    boot = sub.add_parser("boot-time", help="measure cold boot and snapshot restore times")
    boot.add_argument("--runs", type=int, default=5)
    image = sub.add_parser("image", help="manage the guest image")
    image_sub = image.add_subparsers(dest="image_command", required=True)
    build = image_sub.add_parser("build", help="build a guest image (cached)")
    build.add_argument("--recipe", default="default", metavar="FILE_OR_NAME",
                       help="a recipe file (path/to/recipe.toml) or a built-in recipe's name "
                            "(default, scientific)")
    build.add_argument("--force", action="store_true", help="build even if it is up to date")
    image_sub.add_parser("list", help="the images built, their sizes and snapshots")
    inst = sub.add_parser("install", help="install a kernelspec (sandbox-python by default)")
    where = inst.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true")
    where.add_argument("--sys-prefix", action="store_true")
    where.add_argument("--prefix")
    inst.add_argument("--name", help="the kernelspec's name (default sandbox-python, or "
                                      "sandbox-IMAGE with --image)")
    inst.add_argument("--image", help="the image its kernels run (default: default)")
    inst.add_argument("--display-name", help="what the launcher shows")
    inst.add_argument("--memory", type=int, metavar="MB", help="guest memory for this spec")
    inst.add_argument("--cpus", type=int, metavar="N", help="guest vCPUs for this spec")
    inst.add_argument("--wheelhouse", metavar="FOLDER",
                      help="a folder of wheels that %%pip installs from in this spec's VMs")
    args = parser.parse_args(argv)
    try:
        if args.command == "exec":
            return asyncio.run(_exec(args.code))
        if args.command == "doctor":
            return asyncio.run(_doctor())
        if args.command == "boot-time":
            return asyncio.run(_boot_times(args.runs))
        if args.command == "image" and args.image_command == "list":
            return _image_list()
        if args.command == "image":
            return _image_build(args.recipe, args.force)
        return _install(args)
    except SandboxError as exc:
        print(f"sandbox-kernel: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
