"""A private apt configuration for one Debian suite, so that an image is made of the same
packages whatever the host's own apt sources say (or on a host that is not Debian at all).

apt reads the file named by APT_CONFIG before anything under /etc/apt; this one moves every
folder apt would read there (sources, preferences, keyrings, further configuration) and its
state (package lists, the dpkg status, the download cache) into the builder's cache."""

import fcntl
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sandbox_kernel import paths
from sandbox_kernel.errors import ImageBuildError

MIRROR = "http://deb.debian.org/debian"
SECURITY_MIRROR = "http://deb.debian.org/debian-security"
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
ARCHITECTURE = "amd64"  # the guest's


@dataclass(frozen=True)
class AptConfig:
    suite: str
    folder: Path

    @classmethod
    def for_suite(cls, suite: str) -> "AptConfig":
        return cls(suite, paths.apt_dir() / suite)

    @property
    def conf(self) -> Path:
        return self.folder / "etc/apt.conf"

    @property
    def lists(self) -> Path:
        return self.folder / "state/lists"

    def sources(self) -> str:
        signed = f"[signed-by={KEYRING}]"
        return "".join(f"deb {signed} {mirror} {suite} main\n" for mirror, suite in (
            (MIRROR, self.suite), (MIRROR, f"{self.suite}-updates"),
            (SECURITY_MIRROR, f"{self.suite}-security")))

    def settings(self) -> str:
        etc, state, cache = self.folder / "etc", self.folder / "state", self.folder / "cache"
        return "\n".join([
            f'Dir::Etc "{etc}/";',
            'Dir::Etc::main "/dev/null";',  # APT_CONFIG is read already
            'Dir::Etc::parts "parts/";',
            f'Dir::State "{state}/";',
            'Dir::State::lists "lists/";',
            f'Dir::State::status "{state}/status";',
            f'Dir::Cache "{cache}/";',
            # Each resolve has a status file of its own, so only the cache of the lists is
            # worth keeping (36 MB less on disk; compressed lists would cost a second a run).
            'Dir::Cache::pkgcache "";',
            f'Dir::Log "{self.folder}/log/";',
            # Otherwise apt asks dpkg, which answers with the host's foreign architectures.
            f'APT::Architecture "{ARCHITECTURE}";',
            f'APT::Architectures {{ "{ARCHITECTURE}"; }};',
            'APT::Install-Recommends "false";',
            'Acquire::Languages "none";',
            'Debug::NoLocking "true";',  # the lists are guarded by update()'s own lock
            "",
        ])

    def write(self) -> None:
        if not KEYRING.is_file():
            raise ImageBuildError(
                f"Debian's archive keyring is missing ({KEYRING}), so the builder cannot check "
                "Debian's packages. Install it with `apt-get install debian-archive-keyring` "
                "(Ubuntu has it too), or run `make setup`.")
        for sub in ("etc/parts", "etc/preferences.d", "etc/sources.list.d",
                    "etc/trusted.gpg.d", "state/lists/partial", "cache/archives/partial", "log"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        for path, text in ((self.conf, self.settings()),
                           (self.folder / "etc/sources.list", self.sources()),
                           (self.folder / "state/status", "")):
            if not path.exists() or path.read_text() != text:
                path.write_text(text)

    def env(self) -> dict[str, str]:
        return {**os.environ, "APT_CONFIG": str(self.conf), "LC_ALL": "C.UTF-8"}

    def run(self, *args: str, cwd: Path | None = None) -> str:
        proc = subprocess.run(list(args), cwd=cwd, env=self.env(), capture_output=True,
                              text=True, check=False)
        if proc.returncode != 0:
            raise ImageBuildError(
                f"`{' '.join(args[:4])} …` failed ({proc.returncode}):\n"
                f"{proc.stderr.strip()[-2000:]}\nCheck that the Debian archive is reachable "
                f"from this machine; the builder's apt configuration is {self.conf}.")
        return proc.stdout

    def update(self) -> None:
        """Fetches the suite's package lists; two builds at once take turns."""
        self.write()
        with (self.folder / "update.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self.run("apt-get", "update", "-q")
