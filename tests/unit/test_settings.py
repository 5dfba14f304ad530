"""Kernel settings: where they are read from, and kernelspecs with settings of their own."""

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from traitlets.config import Config
from traitlets.config.loader import KVArgParseConfigLoader

from sandbox_kernel.kernel.app import CONFIG_FILE, SandboxKernelApp
from sandbox_kernel.kernel.cell_limits import CellLimits
from sandbox_kernel.kernel.early_launch import read_config, taken_over
from sandbox_kernel.kernel.install import install, kernel_spec
from sandbox_kernel.kernel.settings import VMSettings
from sandbox_kernel.share.plan import SharePlan
from sandbox_kernel.vm.config import VMConfig
from sandbox_kernel.vm.qemu import kernel_args


def test_settings_come_from_the_kernel_s_config_section_and_the_command_line() -> None:
    config = Config()
    config.SandboxKernel.cpus = 3
    assert _machine(VMSettings(config=config).vm_config()) == VMConfig(cpus=3)
    argv = ["--SandboxKernel.memory_mb=2048", "--SandboxKernel.accel=tcg",
            "--SandboxKernel.snapshots=False"]
    settings = VMSettings(config=KVArgParseConfigLoader(argv).load_config())
    assert _machine(settings.vm_config()) == VMConfig(memory_mb=2048, accel="tcg",
                                                      snapshots=False)


def test_the_limits_are_settings() -> None:
    argv = ["--SandboxKernel.tmp_size_mb=64", "--SandboxKernel.home_size_mb=32",
            "--SandboxKernel.worker_memory_mb=300", "--SandboxKernel.worker_processes=50",
            "--SandboxKernel.fresh_python=True", "--SandboxKernel.cell_timeout_s=2.5",
            "--SandboxKernel.max_output_mb=0.5"]
    settings = VMSettings(config=KVArgParseConfigLoader(argv).load_config())
    assert _machine(settings.vm_config()) == VMConfig(
        tmp_size="64m", home_size="32m", worker_memory_mb=300, worker_processes=50,
        fresh_python=True)
    assert settings.cell_limits() == CellLimits(timeout_s=2.5, max_output_bytes=2**19)
    # Off by default: no timeout; the output cap is generous.
    assert VMSettings().cell_limits() == CellLimits(timeout_s=0.0, max_output_bytes=64 * 2**20)


def test_the_worker_s_caps_go_on_the_guest_s_command_line_and_in_the_snapshot_s_key() -> None:
    config = VMConfig(worker_memory_mb=300, worker_processes=50)
    assert {"sandbox.workermem=300", "sandbox.workerpids=50"} <= set(kernel_args(config))
    assert config.machine_key() != VMConfig().machine_key()
    with pytest.raises(ValueError, match="16 processes"):
        VMConfig(worker_processes=3)


def _machine(config: VMConfig) -> VMConfig:
    return replace(config, share=None)


def _plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **traits: object) -> SharePlan:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    config = Config()
    for name, value in traits.items():
        config.SandboxKernel[name] = value
    return VMSettings(config=config).share_plan(start_folder=tmp_path / "home" / "course")


def test_the_start_folder_is_shared_with_the_limits_set(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "home" / "course").mkdir(parents=True)
    plan = _plan(tmp_path, monkeypatch, writable=["results"], share_max_file_mb=5)
    assert plan.settings is not None
    assert plan.settings.folder == tmp_path / "home" / "course"
    assert plan.settings.writable == ("results",) and plan.settings.max_file_bytes == 5 * 2**20
    assert plan.guest_path == "/home/user/course"
    assert "share_max_file_mb" in plan.describe() and "results/" in plan.describe()


@pytest.mark.parametrize(("setting", "why"), [
    (False, "sharing is off"),
    ("~", "your home folder"),
    (".", "holds your home folder"),
    ("/", "root of the file system"),
    ("~/course/.ssh", "may hold credentials"),
])
def test_what_is_never_shared_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         setting: object, why: str) -> None:
    (tmp_path / "home" / "course" / ".ssh").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    plan = _plan(tmp_path, monkeypatch, shared_folder=setting)
    assert plan.settings is None
    assert why in plan.reason and why in plan.describe()


def test_a_writable_subfolder_outside_the_folder_shares_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "home" / "course").mkdir(parents=True)
    plan = _plan(tmp_path, monkeypatch, writable=["../elsewhere"])
    assert plan.settings is None and "c.SandboxKernel.writable" in plan.reason


def test_the_app_reads_sandbox_kernel_config_from_jupyter_s_config_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / f"{CONFIG_FILE}.py").write_text("c.SandboxKernel.memory_mb = 768\n")
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(tmp_path))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    app = SandboxKernelApp()
    app.load_config_file()
    assert VMSettings(config=app.config).vm_config().memory_mb == 768
    SandboxKernelApp.clear_instance()


def test_a_kernelspec_with_its_own_settings(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))  # not the user's
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


def test_no_wheelhouse_unless_one_is_named() -> None:
    assert VMSettings().vm_config().wheelhouse is None


def test_the_wheelhouse_has_the_shared_folder_s_limits_and_is_never_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home" / "wheels").mkdir(parents=True)
    config = Config()
    config.SandboxKernel.wheelhouse = "~/wheels"
    config.SandboxKernel.share_max_read_mb = 7
    plan = VMSettings(config=config).vm_config().wheelhouse
    assert plan is not None and plan.settings is not None
    assert plan.settings.folder == tmp_path / "home" / "wheels"
    assert plan.settings.max_read_bytes == 7 * 2**20 and plan.settings.writable == ()
    assert "/opt/wheelhouse (read-only)" in plan.describe()


@pytest.mark.parametrize(("setting", "why"), [
    ("~", "your home folder"),
    ("/", "root of the file system"),
    ("~/.ssh", "may hold credentials"),
    ("~/absent", "not a folder"),
])
def test_a_wheelhouse_that_is_never_shared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           setting: str, why: str) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home" / ".ssh").mkdir(parents=True)
    config = Config()
    config.SandboxKernel.wheelhouse = setting
    plan = VMSettings(config=config).wheelhouse_plan()
    assert plan is not None and plan.settings is None
    assert why in plan.reason and "c.SandboxKernel.wheelhouse" in plan.describe()


def test_a_kernelspec_with_a_wheelhouse_names_it_by_its_absolute_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sandbox_kernel import cli

    (tmp_path / "wheels").mkdir()
    monkeypatch.chdir(tmp_path)
    assert cli.main(["install", "--prefix", str(tmp_path), "--name", "sandbox-course",
                     "--wheelhouse", "wheels"]) == 0
    spec = json.loads((tmp_path / "share/jupyter/kernels/sandbox-course/kernel.json")
                      .read_text())
    assert spec["argv"][-1] == f"--SandboxKernel.wheelhouse={tmp_path / 'wheels'}"
    assert spec["display_name"] == "Python 3 (sandbox VM, wheelhouse)"
    with pytest.raises(SystemExit, match="absent is not a folder"):
        cli.main(["install", "--prefix", str(tmp_path), "--wheelhouse", "absent"])


def test_the_app_leaves_pdb_alone_since_no_cell_runs_in_its_process() -> None:
    code = ("import sys, pdb\n"
            "from sandbox_kernel.kernel.app import SandboxKernelApp\n"
            "before = pdb.set_trace\n"
            "SandboxKernelApp().init_pdb()\n"
            "assert pdb.set_trace is before\n"
            "assert 'IPython.core.debugger' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_the_settings_read_before_the_imports_are_the_app_s(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # __main__ launches the restore with settings it reads without the app (early_launch);
    # they must be those the app reads, from the same files and command line.
    jupyter = tmp_path / "jupyter"
    jupyter.mkdir()
    (jupyter / f"{CONFIG_FILE}.py").write_text("c.SandboxKernel.memory_mb = 768\n"
                                               "c.SandboxKernel.cpus = 3\n")
    profile = tmp_path / "ipython" / "profile_default"
    profile.mkdir(parents=True)
    (profile / "ipython_kernel_config.py").write_text("c.SandboxKernel.cpus = 1\n"
                                                      "c.SandboxKernel.fresh_python = True\n")
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(jupyter))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    argv = ["-f", str(tmp_path / "kernel.json"), "--SandboxKernel.image=scientific"]
    early = VMSettings(config=read_config(argv)).vm_config()
    assert (early.image, early.memory_mb, early.cpus, early.fresh_python) == (
        "scientific", 768, 3, True)  # ours over the profile's, the command line over both
    app = SandboxKernelApp()
    try:
        app.parse_command_line(argv)
        app.init_profile_dir()
        app.load_config_file()
        assert VMSettings(config=app.config).vm_config().launch_settings() == (
            early.launch_settings())
    finally:
        SandboxKernelApp.clear_instance()


class _Launch:
    discarded = False

    def discard(self) -> None:
        self.discarded = True


def test_a_launch_with_other_settings_than_the_app_s_is_discarded() -> None:
    launch = _Launch()
    same = taken_over((VMConfig(), launch), VMConfig())  # type: ignore[arg-type]
    assert same is launch and not launch.discarded
    # Settings a restore's launch does not depend on do not matter.
    assert taken_over((VMConfig(), launch), VMConfig(restore_timeout_s=5)) is launch  # type: ignore[arg-type]
    assert taken_over((VMConfig(), launch), VMConfig(memory_mb=768)) is None  # type: ignore[arg-type]
    assert launch.discarded
    assert taken_over(None, VMConfig()) is None
