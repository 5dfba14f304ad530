"""Libraries the wheels' compiled modules need that the image does not have. manylinux wheels
bundle most of theirs, but expect a few of the system (the C++ runtime, OpenGL for some): a
module whose library is missing fails at its first import, in a notebook. Told at build time
instead, with the file that needs it."""

from pathlib import Path

from sandbox_kernel.image.elf import read_dynamic

_SYSTEM = ("lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib", "usr/lib",
           "usr/local/lib", "lib64")


def _system_dirs(root: Path) -> list[Path]:
    """The loader's own folders, and those ldconfig was told about in the image."""
    dirs = [root / sub for sub in _SYSTEM]
    for conf in sorted((root / "etc/ld.so.conf.d").glob("*.conf")):
        for line in conf.read_text().splitlines():
            line = line.split("#")[0].strip()
            if line.startswith("/"):
                dirs.append(root / line.lstrip("/"))
    return [d for d in dirs if d.is_dir()]


def _names_in(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def missing_libraries(root: Path, folder: Path) -> dict[str, list[str]]:
    """Each library some ELF file under ``folder`` needs and the guest's loader would not
    find, with those files (relative to ``folder``)."""
    system = set().union(*(_names_in(d) for d in _system_dirs(root)))
    missing: dict[str, list[str]] = {}
    for path in sorted(folder.rglob("*.so*")):
        if path.is_symlink() or not path.is_file():
            continue
        dynamic = read_dynamic(path)
        if dynamic is None:
            continue
        # Its own folder too: a wheel's bundled libraries (auditwheel's pkg.libs) need each
        # other without a RUNPATH, found because a module that names that folder loaded them.
        search = [path.parent, *(_in_image(root, path, entry) for entry in dynamic.search)]
        for lib in dynamic.needed:
            if lib not in system and not any((d / lib).exists() for d in search):
                missing.setdefault(lib, []).append(str(path.relative_to(folder)))
    return missing


def _in_image(root: Path, path: Path, entry: str) -> Path:
    entry = entry.replace("${ORIGIN}", "$ORIGIN")
    if "$ORIGIN" in entry:
        return Path(entry.replace("$ORIGIN", str(path.parent)))
    return root / entry.lstrip("/")


def describe(missing: dict[str, list[str]]) -> str:
    return "; ".join(f"{lib} (for {files[0]}{f' and {len(files) - 1} more' if files[1:] else ''})"
                     for lib, files in sorted(missing.items()))
