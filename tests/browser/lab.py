"""JupyterLab on loopback, in folders of its own: its config, settings, workspaces and runtime
files are the test's, so neither the user's Lab set-up nor another run shows in it."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

TOKEN = "sandbox-browser-test"
START_TIMEOUT = 60
# Lab's first start offers news in a notification that can cover the toolbar; the test wants
# a Lab as a user has it once that is answered.
DISABLED_PLUGINS = ["@jupyterlab/apputils-extension:announcements"]


@dataclass(frozen=True)
class Lab:
    url: str
    root: Path
    log: Path

    def log_tail(self, chars: int = 20_000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def lab_url(self) -> str:
        return f"{self.url}/lab?token={TOKEN}"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _lab_env(home: Path) -> dict[str, str]:
    config = home / "config"
    (config / "labconfig").mkdir(parents=True)
    (config / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": dict.fromkeys(DISABLED_PLUGINS, True)}))
    return {**os.environ, "JUPYTER_CONFIG_DIR": str(config),
            "JUPYTER_DATA_DIR": str(home / "data"),
            "JUPYTER_RUNTIME_DIR": str(home / "runtime")}


def _command(port: int, home: Path, root: Path) -> list[str]:
    return [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1",
            f"--port={port}", "--ServerApp.port_retries=0", "--allow-root",
            f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={root}",
            f"--LabApp.user_settings_dir={home / 'settings'}",
            f"--LabApp.workspaces_dir={home / 'workspaces'}",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]


def _wait_until_up(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            with urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=5):
                return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                state = "exited" if proc.poll() is not None else f"not up in {START_TIMEOUT} s"
                raise RuntimeError(f"JupyterLab {state}; its log:\n{log.read_text()}") from None
            time.sleep(0.2)


@contextmanager
def running_lab(home: Path) -> Iterator[Lab]:
    """A JupyterLab whose notebooks live in ``home/notebooks``; stopped, and reaped, on exit."""
    root = home / "notebooks"
    root.mkdir(parents=True)
    port = _free_port()
    lab = Lab(url=f"http://127.0.0.1:{port}", root=root, log=home / "lab.log")
    with lab.log.open("wb") as log:
        proc = subprocess.Popen(_command(port, home, root), stdout=log,
                                stderr=subprocess.STDOUT, env=_lab_env(home))
        try:
            _wait_until_up(proc, lab.url, lab.log)
            yield lab
        finally:
            proc.terminate()  # the server shuts its kernels down, and they their VMs
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
