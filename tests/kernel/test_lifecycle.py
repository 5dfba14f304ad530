"""The kernel's life: start, restart, exit, shutdown, a killed kernel, a VM that cannot
start, the host's time zone."""

import contextlib
import os
import signal
import socket
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import zmq
from jupyter_client.manager import KernelManager

from sandbox_kernel import paths
from sandbox_kernel.vm.rundir import sweep_stale_run_dirs
from tests.kernel.kernels import (
    KERNEL_NAME,
    Kernel,
    kernel_pid,
    qemu_children,
    run,
    start_kernel,
    stdout_of,
)

pytestmark = [pytest.mark.vm, pytest.mark.timeout(240)]


def _run_dirs_of(qemu: list[int]) -> list[Path]:
    tmp = paths.run_root()
    return [tmp / d.name for d in tmp.iterdir()
            if d.name.startswith("sandbox-vm-") and (d / "qemu.pid").exists()
            and int((d / "qemu.pid").read_text()) in qemu]


def _first_cell(env: dict[str, str], code: str, timeout: float
                ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The reply to, and IOPub messages of, the first cell of a kernel started with ``env``."""
    km = KernelManager(kernel_name=KERNEL_NAME)
    km.start_kernel(env={**os.environ, **env})
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        return run(kc, code, timeout=timeout)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)


def _accepts_tcp(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
        return True
    return False


def test_exit_keep_kernel_keeps_it(kernel: Kernel) -> None:
    km, kc = kernel
    run(kc, "kept = 7")
    reply, _ = run(kc, "exit(keep_kernel=True)")
    assert reply["content"]["payload"] == [{"source": "ask_exit", "keepkernel": True}]
    time.sleep(1)  # ipykernel would have stopped after 0.1 s
    assert km.is_alive()
    assert stdout_of(run(kc, "print(kept)")[1]) == "7\n"


def test_restart_gives_a_fresh_vm_and_shutdown_leaves_nothing() -> None:
    km, kc = start_kernel()
    try:
        run(kc, "leftover = 1")
        old_qemu = qemu_children(kernel_pid(km))
        km.restart_kernel(now=False)
        kc.wait_for_ready(timeout=120)
        reply, _ = run(kc, "leftover", timeout=150)
        assert reply["content"]["ename"] == "NameError"
        assert old_qemu and not any(Path(f"/proc/{q}").exists() for q in old_qemu)
        new_qemu = qemu_children(kernel_pid(km))
        assert new_qemu
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)
    assert not any(Path(f"/proc/{q}").exists() for q in new_qemu)


def test_exit_in_a_cell_ends_the_kernel_and_its_vm_as_in_ipykernel() -> None:
    # Frontends restart a kernel that ends this way; `exit()` is how notebooks ask for one.
    km, kc = start_kernel()
    try:
        process = km.provisioner.process  # type: ignore[union-attr]
        qemu = qemu_children(process.pid)
        reply, _ = run(kc, "exit()")
        assert reply["content"]["payload"] == [{"source": "ask_exit", "keepkernel": False}]
        assert process.wait(timeout=30) == 0
        assert qemu and not any(Path(f"/proc/{q}").exists() for q in qemu)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


@pytest.mark.parametrize("snapshots", ["1", "0"])
def test_the_guest_keeps_the_host_s_time_zone(snapshots: str) -> None:
    # Restored and cold-booted VMs both: a local kernel would show local time.
    env = {**os.environ, "TZ": "Europe/Berlin", "SANDBOX_KERNEL_SNAPSHOTS": snapshots}
    km, kc = start_kernel(env=env)
    try:
        _, msgs = run(kc, "import time\nprint(time.localtime().tm_gmtoff)")
        offset = datetime.now(ZoneInfo("Europe/Berlin")).utcoffset()
        assert offset is not None
        assert stdout_of(msgs) == f"{int(offset.total_seconds())}\n"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)


def test_kernel_exits_by_itself_after_shutdown_requests() -> None:
    # ipykernel's control thread used to lose a race with the IOPub thread's atexit stop at
    # about every second shutdown, and then sat out a 10 s flush timeout.
    for _ in range(4):
        km, kc = start_kernel()
        process = km.provisioner.process  # type: ignore[union-attr]
        kc.shutdown()
        try:
            code = process.wait(timeout=8)
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=True)
        assert code == 0


def test_shutdown_before_any_cell_stops_the_early_started_vm() -> None:
    # The restore begins before ipykernel is imported; the kernel takes the VM over only
    # after the first kernel_info. A shutdown before any cell must still end it cleanly.
    km = KernelManager(kernel_name=KERNEL_NAME)
    km.start_kernel()
    process = km.provisioner.process  # type: ignore[union-attr]
    try:
        pid = kernel_pid(km)
        deadline = time.monotonic() + 30
        while not qemu_children(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        qemu = qemu_children(pid)
        assert qemu, "the kernel process starts its VM at once"
        run_dirs = _run_dirs_of(qemu)
    finally:
        km.shutdown_kernel(now=False)
    assert process.wait(timeout=10) == 0  # it exited by itself, not by SIGTERM
    assert not any(Path(f"/proc/{q}/cmdline").exists() and
                   Path(f"/proc/{q}/cmdline").read_bytes() for q in qemu)
    assert not any(d.exists() for d in run_dirs)


def test_qemu_exits_when_the_kernel_process_is_killed() -> None:
    km, kc = start_kernel()
    pid = kernel_pid(km)
    qemu = qemu_children(pid)
    assert qemu
    run_dirs = _run_dirs_of(qemu)
    assert run_dirs
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    while any(Path(f"/proc/{q}/cmdline").exists() and Path(f"/proc/{q}/cmdline").read_bytes()
              for q in qemu) and time.monotonic() < killed + 10:
        time.sleep(0.02)
    gone_after = time.monotonic() - killed
    kc.stop_channels()
    km.cleanup_resources()
    assert not any(Path(f"/proc/{q}/cmdline").exists() and
                   Path(f"/proc/{q}/cmdline").read_bytes() for q in qemu)
    assert gone_after < 2.0
    while any(Path(f"/proc/{q}").exists() for q in qemu) and time.monotonic() < killed + 10:
        time.sleep(0.05)  # dead already; reaped by whoever inherited it
    # A SIGKILLed kernel cannot clean up; the next VM start sweeps what it left.
    sweep_stale_run_dirs()
    assert not any(d.exists() for d in run_dirs)


def test_a_vm_that_cannot_start_explains_itself_on_the_first_cell() -> None:
    reply, msgs = _first_cell({"SANDBOX_KERNEL_ACCEL": "kvm", "SANDBOX_KERNEL_SNAPSHOTS": "0"},
                              "print('never')", timeout=120)
    assert reply["content"]["status"] == "error"
    assert "sandbox-kernel doctor" in reply["content"]["evalue"]
    assert any(m["msg_type"] == "error" for m in msgs)


def test_an_unexpected_vm_start_failure_answers_the_cell(tmp_path: Path) -> None:
    # Any failure of the VM start must reach the frontend as an error reply; an exception
    # that escaped to ipykernel used to leave the cell waiting for ever.
    (tmp_path / "sitecustomize.py").write_text(
        "import sandbox_kernel.kernel.kernel as k\n"
        "def broken():\n"
        "    raise RuntimeError('injected start failure')\n"
        "k._load_vm_side = broken\n")
    reply, _ = _first_cell({"PYTHONPATH": str(tmp_path)}, "1 + 1", timeout=30)
    assert reply["content"]["status"] == "error"
    assert "injected start failure" in reply["content"]["evalue"]


def test_the_kernel_listens_before_its_heavy_imports(tmp_path: Path) -> None:
    # ipykernel's import is held until the test lets it go: the ports must listen already,
    # and a frontend that connected then must be served without having to connect again.
    go = tmp_path / "go"
    (tmp_path / "sitecustomize.py").write_text(
        "import os, sys, time\n"
        "class HoldIpykernel:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'ipykernel':\n"
        "            sys.meta_path.remove(self)\n"
        "            deadline = time.monotonic() + 60\n"
        f"            while not os.path.exists({str(go)!r}) and time.monotonic() < deadline:\n"
        "                time.sleep(0.02)\n"
        "        return None\n"
        "sys.meta_path.insert(0, HoldIpykernel())\n")
    km = KernelManager(kernel_name=KERNEL_NAME)
    km.start_kernel(env={**os.environ, "PYTHONPATH": str(tmp_path)})
    kc = km.client()
    try:
        ports = [km.shell_port, km.iopub_port, km.stdin_port, km.control_port]
        deadline = time.monotonic() + 20
        while not all(_accepts_tcp(port) for port in ports):
            assert time.monotonic() < deadline, "the ports did not listen while imports waited"
            time.sleep(0.05)
        # No second try within the test: the first connection has to be the one served.
        kc.context.setsockopt(zmq.RECONNECT_IVL, 600_000)
        kc.start_channels()
        time.sleep(0.3)
        go.touch()
        kc.wait_for_ready(timeout=60)
        reply, _ = run(kc, "1 + 1", timeout=120)
        assert reply["content"]["status"] == "ok"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)
