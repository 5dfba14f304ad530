"""What the kernel process does as it starts: what it imports before the early VM start, and
the log line that says which settings its VM runs with."""

import subprocess
import sys
from pathlib import Path

import pytest

from sandbox_kernel.kernel.vm_start import settings_in_force
from sandbox_kernel.vm.config import VMConfig
from sandbox_kernel.vm.machine import SandboxVM
from sandbox_kernel.vm.verdicts import Verdict, store_verdict


def test_the_settings_in_force_are_one_line() -> None:
    vm = SandboxVM(VMConfig(memory_mb=2048, cpus=4, accel="tcg", snapshots=False), "tcg")
    vm.boot_seconds = 3.2
    line = settings_in_force(vm)
    assert line == ("sandbox VM ready in 3.20 s, booted cold: image default, 2048 MiB, 4 vCPUs, "
                    "accel tcg, snapshots off; running under tcg (set by configuration "
                    "(accel or SANDBOX_KERNEL_ACCEL))")


def test_the_line_gives_the_reason_of_the_accelerator_verdict(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDBOX_KERNEL_CACHE_DIR", str(tmp_path))
    qemu = tmp_path / "qemu-fake"  # the verdicts are kept per QEMU version
    qemu.write_text("#!/bin/sh\necho 'QEMU emulator version 9.9.9'\n")
    qemu.chmod(0o755)
    config = VMConfig(accel="auto", snapshots=True, qemu_binary=str(qemu))
    vm = SandboxVM(config, "tcg")
    vm.started_from = "snapshot"
    assert "accel auto, snapshots on; running under tcg (reason unknown)" in settings_in_force(vm)
    store_verdict(config, Verdict("tcg", "a KVM probe boot failed: no"))
    line = settings_in_force(vm)
    assert "restored from the shared snapshot" in line
    vm.own_layout = True
    assert "restored from a spare snapshot" in settings_in_force(vm)
    assert line.endswith("running under tcg (a KVM probe boot failed: no)")


def test_the_kernel_process_imports_no_protocol_before_its_early_vm_start() -> None:
    # __main__ imports these two before the app binds its sockets and starts the early VM;
    # pydantic and the protocol's models (about 50 ms) would delay QEMU's launch.
    code = ("import sys, sandbox_kernel.kernel.app, sandbox_kernel.kernel.kernel\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pydantic'\n"
            "             or m in ('sandbox_kernel.protocol', 'sandbox_kernel.channel')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=30).stdout
    assert out.strip() == "[]"
