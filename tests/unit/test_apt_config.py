"""The builder's private apt configuration: its own sources, lists and keyring, and never the
host's apt set-up. The tests marked `network` run the real apt against the Debian archive."""

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox_kernel.errors import ImageBuildError
from sandbox_kernel.image import apt, apt_config
from sandbox_kernel.image.apt_config import AptConfig


def test_the_configuration_moves_every_folder_apt_reads(tmp_path: Path) -> None:
    config = AptConfig("trixie", tmp_path)
    settings = config.settings()
    for line in (f'Dir::Etc "{tmp_path}/etc/";', 'Dir::Etc::main "/dev/null";',
                 f'Dir::State "{tmp_path}/state/";',
                 f'Dir::State::status "{tmp_path}/state/status";',
                 f'Dir::Cache "{tmp_path}/cache/";', 'APT::Architectures { "amd64"; };'):
        assert line in settings
    signed = f"[signed-by={apt_config.KEYRING}]"
    assert config.sources().splitlines() == [
        f"deb {signed} {apt_config.MIRROR} trixie main",
        f"deb {signed} {apt_config.MIRROR} trixie-updates main",
        f"deb {signed} {apt_config.SECURITY_MIRROR} trixie-security main"]
    config.write()
    assert config.env()["APT_CONFIG"] == str(tmp_path / "etc/apt.conf")
    assert (tmp_path / "etc/apt.conf").read_text() == settings
    assert (tmp_path / "state/status").read_text() == ""


def test_without_debians_keyring_the_build_says_what_to_install(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(apt_config, "KEYRING", tmp_path / "missing.gpg")
    with pytest.raises(ImageBuildError, match="apt-get install debian-archive-keyring"):
        AptConfig("bookworm", tmp_path / "apt").write()


_TRACED = """
import sys
from pathlib import Path
from sandbox_kernel.image import apt
from sandbox_kernel.image.apt_config import AptConfig

config = AptConfig("bookworm", Path(sys.argv[1]))
config.update()
packages = [p for p in apt.resolve(config, ("python3-tabulate",), ("python3-six",))
            if p.name == "python3-tabulate"]
print(apt.download(config, apt.describe(config, packages), Path(sys.argv[2])))
"""


@pytest.mark.network
@pytest.mark.timeout(300)
@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace (`make test` has it)")
def test_the_builder_never_reads_the_hosts_apt_setup(tmp_path: Path) -> None:
    """Every file apt opens, checks or lists while the builder updates, resolves and
    downloads: none under /etc/apt (sources.list, sources.list.d, apt.conf.d, keyrings), nor
    the host's lists or dpkg status."""
    trace = tmp_path / "trace"
    proc = subprocess.run(
        ["strace", "-f", "-qq", "-e", "trace=%file", "-o", str(trace), sys.executable, "-c",
         _TRACED, str(tmp_path / "apt"), str(tmp_path / "debs")],
        capture_output=True, text=True, check=False, timeout=280)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "python3-tabulate" in proc.stdout and list((tmp_path / "debs").glob("*.deb"))
    touched = trace.read_text()
    assert "apt-get" in touched and "/usr/lib/apt/methods/http" in touched  # it did trace apt
    for host_path in ('"/etc/apt', '"/var/lib/apt', '"/var/lib/dpkg/status', '"/var/cache/apt'):
        lines = [line for line in touched.splitlines() if host_path in line]
        assert not lines, "\n".join(lines[:5])
    assert list((tmp_path / "apt/state/lists").glob("*_bookworm_InRelease"))


@pytest.fixture(scope="module")
def bookworm(tmp_path_factory: pytest.TempPathFactory) -> AptConfig:
    config = AptConfig("bookworm", tmp_path_factory.mktemp("apt"))
    config.update()
    return config


@pytest.mark.network
def test_downloads_are_checked_against_the_signed_index(bookworm: AptConfig,
                                                        tmp_path: Path) -> None:
    wanted = apt.describe(bookworm, [p for p in apt.resolve(bookworm, ("python3-tabulate",))
                                     if p.name == "python3-tabulate"])
    [(package, deb)] = wanted.items()
    [path] = apt.download(bookworm, wanted, tmp_path / "debs").values()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == deb.sha256
    path.write_bytes(b"tampered")  # a cached file that is not what the index says
    apt.download(bookworm, wanted, tmp_path / "debs")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == deb.sha256
    forged = {package: apt.Deb(deb.file_name, "0" * 64)}
    with pytest.raises(ImageBuildError, match="does not match the archive's index"):
        apt.download(bookworm, forged, tmp_path / "other")


@pytest.mark.network
def test_excluded_packages_stay_out_of_the_closure(bookworm: AptConfig) -> None:
    names = {p.name for p in apt.resolve(bookworm, ("python3-asttokens",))}
    assert {"python3-asttokens", "python3-six", "python3"} <= names
    names = {p.name for p in apt.resolve(bookworm, ("python3-asttokens",), ("python3-six",))}
    assert "python3-asttokens" in names and "python3-six" not in names


@pytest.mark.network
def test_a_package_the_suite_lacks_is_named(bookworm: AptConfig) -> None:
    with pytest.raises(ImageBuildError, match=r"Debian bookworm has no package \(or version\) "
                                              r"python3-no-such-thing, python3-numpy: check"):
        apt.resolve(bookworm, ("python3-no-such-thing", "python3-numpy=0.1", "less"))


def test_each_file_apt_lists_is_matched_to_its_package() -> None:
    # apt's order, not the order asked in; an epoch's colon is %3a in the file name.
    out = ("'http://mirror.invalid/b.deb' busybox-static_1%3a1.35.0-4_amd64.deb 9 SHA256:"
           + "b" * 64 + "\n'http://mirror.invalid/a.deb' libc6_2.36-9_amd64.deb 9 SHA256:"
           + "a" * 64 + "\n")
    libc, busybox = apt.Package("libc6", "2.36-9"), apt.Package("busybox-static", "1:1.35.0-4")
    assert apt.parse_uris(out, [libc, busybox]) == {
        libc: apt.Deb("libc6_2.36-9_amd64.deb", "a" * 64),
        busybox: apt.Deb("busybox-static_1%3a1.35.0-4_amd64.deb", "b" * 64)}
    with pytest.raises(ImageBuildError, match="apt gave no file for less=590-2"):
        apt.parse_uris(out, [libc, apt.Package("less", "590-2")])
