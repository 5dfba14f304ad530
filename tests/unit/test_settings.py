"""Kernel settings: where they are read from, and kernelspecs with settings of their own."""

import json
import sys
from pathlib import Path

import pytest
from traitlets.config import Config
from traitlets.config.loader import KVArgParseConfigLoader

from sandbox_kernel.kernel.app import CONFIG_FILE, SandboxKernelApp
from sandbox_kernel.kernel.install import install, kernel_spec
from sandbox_kernel.kernel.settings import VMSettings
from sandbox_kernel.vm.config import VMConfig


def test_settings_come_from_the_kernel_s_config_section_and_the_command_line() -> None:
    config = Config()
    config.SandboxKernel.cpus = 3
    assert VMSettings(config=config).vm_config() == VMConfig(cpus=3)
    argv = ["--SandboxKernel.memory_mb=2048", "--SandboxKernel.accel=tcg",
            "--SandboxKernel.snapshots=False"]
    settings = VMSettings(config=KVArgParseConfigLoader(argv).load_config())
    assert settings.vm_config() == VMConfig(memory_mb=2048, accel="tcg", snapshots=False)


def test_the_app_reads_sandbox_kernel_config_from_jupyter_s_config_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / f"{CONFIG_FILE}.py").write_text("c.SandboxKernel.memory_mb = 768\n")
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(tmp_path))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    app = SandboxKernelApp()
    app.load_config_file()
    assert VMSettings(config=app.config).vm_config().memory_mb == 768
    SandboxKernelApp.clear_instance()


def test_a_kernelspec_with_its_own_settings(tmp_path: Path) -> None:
    spec = kernel_spec(memory_mb=512, cpus=1)
    assert spec["display_name"] == "Python 3 (sandbox VM, 512 MB, 1 vCPU)"
    argv = spec["argv"]
    assert isinstance(argv, list)
    assert argv[0] == sys.executable and argv[1:3] == ["-m", "sandbox_kernel"]
    assert argv[-2:] == ["--SandboxKernel.memory_mb=512", "--SandboxKernel.cpus=1"]
    assert kernel_spec()["display_name"] == "Python 3 (sandbox VM)"
    where = install(prefix=str(tmp_path), name="sandbox-big", display_name="Big VM",
                    memory_mb=4096, cpus=4)
    written = json.loads((Path(where) / "kernel.json").read_text())
    assert written["display_name"] == "Big VM"
    assert written["argv"][-2:] == ["--SandboxKernel.memory_mb=4096", "--SandboxKernel.cpus=4"]
    assert written["interrupt_mode"] == "message"
