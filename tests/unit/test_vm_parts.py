import asyncio
import os
import subprocess
import time
from pathlib import Path

import pytest

from sandbox_kernel.image.store import ImagePaths
from sandbox_kernel.vm import qemu, restore, snapshot_store
from sandbox_kernel.vm.config import VMConfig
from sandbox_kernel.vm.machine import SandboxVM
from sandbox_kernel.vm.process import QemuProcess
from sandbox_kernel.vm.rundir import RunDir, sweep_stale_run_dirs


def test_stale_run_dirs_are_swept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDBOX_KERNEL_RUN_DIR", str(tmp_path))
    names = ("dead", "alive", "zombie", "reused", "old", "new", "execing")
    dead, alive, zombie, reused, old, fresh, execing = (
        tmp_path / f"sandbox-vm-{n}" for n in names)
    for folder in (dead, alive, zombie, reused, old, fresh, execing):
        folder.mkdir()
    # A live process whose command line reads empty, as QEMU's does while setpriv execs it
    # (another kernel starting its VM at the same time): a kernel thread stands in.
    (execing / "qemu.pid").write_text(str(_empty_command_line()))
    (dead / "qemu.pid").write_text("999999999")
    # A process whose command line names its folder, as QEMU's does.
    running = subprocess.Popen(["sh", "-c", "sleep 30", str(alive)])
    (alive / "qemu.pid").write_text(str(running.pid))
    # A QEMU whose kernel was killed: dead, and not reaped yet.
    ended = subprocess.Popen(["true", str(zombie)])
    while Path(f"/proc/{ended.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
        time.sleep(0.01)  # (its command line is empty for a moment in exec, too)
    (zombie / "qemu.pid").write_text(str(ended.pid))
    (reused / "qemu.pid").write_text(str(os.getpid()))  # some other program's pid now
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    try:
        sweep_stale_run_dirs()
    finally:
        running.kill()
        running.wait()
        ended.wait()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "sandbox-vm-alive", "sandbox-vm-execing", "sandbox-vm-new"]


def _empty_command_line() -> int:
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and not (entry / "cmdline").read_bytes() and (
                    entry / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                return int(entry.name)
        except OSError:
            continue
    pytest.skip("no kernel thread to stand in for a process in exec")


def test_command_line_keeps_the_guest_isolated_and_tcg_safe(tmp_path: Path) -> None:
    image = ImagePaths(tmp_path)
    run = RunDir(tmp_path / "run")
    cmd = qemu.command_line(VMConfig(accel="tcg"), image, "tcg", run)
    line = " ".join(cmd)
    assert "-nic none" in line and "-nodefaults" in line
    assert "virtio-net" not in line and "-netdev" not in line
    assert "pic=off" not in line and "pit=off" not in line and "rtc=off" not in line
    assert "readonly=on" in line and "tcg,tb-size=" in line
    # Every VM has the shared folder's and the wheelhouse's ports: one snapshot serves all.
    assert "name=org.sandbox.share" in line and "name=org.sandbox.wheelhouse" in line
    assert "-incoming" not in cmd
    restored = qemu.command_line(VMConfig(), image, "tcg", run, incoming="exec:cat x")
    assert restored[-2:] == ["-incoming", "exec:cat x"]


def test_the_kvm_command_line_differs_from_tcg_s_only_in_accelerator_cpu_and_timing(
        tmp_path: Path) -> None:
    image = ImagePaths(tmp_path)
    run = RunDir(tmp_path / "run")
    tcg = qemu.command_line(VMConfig(), image, "tcg", run)
    kvm = qemu.command_line(VMConfig(), image, "kvm", run)
    assert kvm[kvm.index("-accel") + 1] == "kvm"
    assert kvm[kvm.index("-cpu") + 1] == "max"
    assert "tsc_early_khz" not in kvm[kvm.index("-append") + 1]
    changed = {kvm.index("-accel") + 1, kvm.index("-cpu") + 1, kvm.index("-append") + 1}
    assert len(kvm) == len(tcg)
    assert [a for i, a in enumerate(kvm) if i not in changed] == [
        a for i, a in enumerate(tcg) if i not in changed]
    assert kvm[kvm.index("-append") + 1] == " ".join(qemu.kernel_args(VMConfig()))


def test_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        VMConfig(accel="fast")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        VMConfig(memory_mb=64)


def test_snapshots_setting_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDBOX_KERNEL_SNAPSHOTS", "off")
    assert VMConfig().snapshots is False
    monkeypatch.setenv("SANDBOX_KERNEL_SNAPSHOTS", "1")
    assert VMConfig().snapshots is True


def test_pruning_keeps_the_new_snapshot_and_the_most_recently_used(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDBOX_KERNEL_CACHE_DIR", str(tmp_path))
    snaps_dir = tmp_path / "snapshots"
    snaps_dir.mkdir()
    snaps = [snapshot_store.SnapshotPaths(f"k{i}") for i in range(5)]
    for age, snap in enumerate(snaps):
        snap.folder.mkdir()
        snap.state.write_bytes(b"x")
        snap.ram.write_bytes(b"x")
        snap.lock.touch()
        os.utime(snap.folder, (time.time() - 100 * age, time.time() - 100 * age))
    # A restore marks it used: now the most recent of the old ones.
    proc, ports = restore.launch_restore(VMConfig(qemu_binary="true"), ImagePaths(tmp_path),
                                         "tcg", RunDir(tmp_path), snaps[4])
    proc.popen.wait()
    ports.close()
    dead_capture = snaps_dir / ".capture-999999999-x"
    live_capture = snaps_dir / f".capture-{os.getpid()}-x"
    dead_capture.mkdir()
    live_capture.mkdir()
    snapshot_store.prune_snapshots(keep=snaps[3], limit=3)
    assert {s.key for s in snaps if s.exists()} == {"k0", "k3", "k4"}
    assert not snaps[1].lock.exists() and snaps[0].lock.exists()
    assert not dead_capture.exists() and live_capture.exists()


def test_restore_maps_the_snapshot_ram_privately_from_one_folder(tmp_path: Path) -> None:
    """QEMU opens ``ram`` and ``state`` inside the folder it was given as a descriptor, so a
    snapshot replaced meanwhile cannot pair one file with the other's twin."""
    image = ImagePaths(tmp_path)
    run = RunDir(tmp_path / "run")
    ram = qemu.GuestRam("/proc/self/fd/7/ram", shared=False)
    cmd = qemu.command_line(VMConfig(memory_mb=512), image, "tcg", run, "defer", ram)
    line = " ".join(cmd)
    assert "memory-backend-file,id=ram,size=512M,mem-path=/proc/self/fd/7/ram,share=off" in line
    assert "memory-backend=ram" in cmd[cmd.index("-M") + 1]
    assert cmd[-2:] == ["-incoming", "defer"]
    assert f"socket,id=cmd,path={run.cmd_socket},server=on,wait=off" in cmd
    capture = qemu.GuestRam("/home/a,b/ram", shared=True)
    assert "mem-path=/home/a,,b/ram,share=on" in capture.qemu_object(1024)
    plain = qemu.command_line(VMConfig(), image, "tcg", run)
    assert "memory-backend" not in " ".join(plain)


def test_qemu_version_is_remembered_per_binary(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "qemu-fake"
    fake.write_text("#!/bin/sh\necho 'QEMU emulator version 9.9.9 (test)'\n"
                    f"echo run >> {tmp_path}/runs\n")
    fake.chmod(0o755)
    monkeypatch.setenv("SANDBOX_KERNEL_CACHE_DIR", str(tmp_path / "cache"))
    qemu.qemu_version.cache_clear()
    try:
        assert qemu.qemu_version(str(fake)) == "9.9.9 (test)"
        qemu.qemu_version.cache_clear()
        assert qemu.qemu_version(str(fake)) == "9.9.9 (test)"  # from the file this time
        assert (tmp_path / "runs").read_text() == "run\n"
        fake.write_text(fake.read_text().replace("9.9.9", "10.0.0"))  # an upgrade
        qemu.qemu_version.cache_clear()
        assert qemu.qemu_version(str(fake)) == "10.0.0 (test)"
    finally:
        qemu.qemu_version.cache_clear()


def test_boot_failure_logs_are_bounded(tmp_path: Path) -> None:
    from sandbox_kernel.vm.machine import prune_boot_logs

    names = [f"boot-failure-20261130-0000{i:02d}-sandbox-vm-x.log" for i in range(12)]
    for name in names:
        (tmp_path / name).write_text("log")
    (tmp_path / "notes.txt").write_text("not a boot log")
    prune_boot_logs(tmp_path, keep=5)
    assert sorted(p.name for p in tmp_path.glob("boot-failure-*")) == names[-5:]
    assert (tmp_path / "notes.txt").exists()


async def test_an_unanswered_start_request_is_sent_again_until_answered() -> None:
    from sandbox_kernel import protocol as p
    from sandbox_kernel.vm.machine import SandboxVM

    sent: list[p.Message] = []

    class GuestThatMissesTheFirstLine:
        async def request(self, request: p.Message) -> p.Event:
            sent.append(request)
            if len(sent) == 1:
                await asyncio.sleep(3600)  # lost: never answered
            return p.Ack(id=request.id)

    vm = SandboxVM(VMConfig(), "tcg")
    ids = iter(range(1, 100))
    reply = await asyncio.wait_for(vm._ask_until_answered(
        GuestThatMissesTheFirstLine(),  # type: ignore[arg-type]
        lambda: p.Reseed(id=next(ids), entropy=b"x" * 64, wall_time=time.time()),
        retry_after=0.05), 5)
    assert isinstance(reply, p.Ack) and reply.id == 2
    assert [type(m) for m in sent] == [p.Reseed, p.Reseed]


def test_a_changed_guest_kernel_command_line_is_a_different_snapshot(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(snapshot_store, "qemu_version", lambda binary: "7.2.0")
    image = _built_image(tmp_path)
    before = snapshot_store.snapshot_for(VMConfig(), image, "tcg")
    assert snapshot_store.snapshot_for(VMConfig(), image, "tcg") == before
    args = qemu.kernel_args(VMConfig())
    monkeypatch.setattr(snapshot_store, "kernel_args",
                        lambda config: [*args, "mitigations=off"])
    assert snapshot_store.snapshot_for(VMConfig(), image, "tcg") != before
    boot = qemu.command_line(VMConfig(), image, "tcg", RunDir(tmp_path / "run"))
    assert boot[boot.index("-append") + 1].startswith(" ".join(args))


def _built_image(folder: Path) -> ImagePaths:
    image = ImagePaths(folder)
    image.rootfs.write_bytes(b"root")
    image.kernel.write_bytes(b"vmlinux")
    return image


def test_a_rebuilt_image_is_a_different_snapshot(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # A snapshot holds the guest's page cache of the root: an old one on a new root would
    # read another file's blocks.
    monkeypatch.setattr(snapshot_store, "qemu_version", lambda binary: "7.2.0")
    image = _built_image(tmp_path)
    before = snapshot_store.snapshot_for(VMConfig(), image, "tcg")
    assert snapshot_store.snapshot_for(VMConfig(), image, "tcg") == before
    rebuilt = tmp_path / "root.erofs.part"
    rebuilt.write_bytes(b"root")  # the same bytes, even: another build
    rebuilt.replace(image.rootfs)
    assert snapshot_store.snapshot_for(VMConfig(), image, "tcg") != before


def test_a_spare_is_claimed_by_one_process_and_pruned_with_its_snapshot(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDBOX_KERNEL_CACHE_DIR", str(tmp_path))
    (tmp_path / "snapshots").mkdir()

    def made(snap: snapshot_store.SnapshotPaths, age: int) -> snapshot_store.SnapshotPaths:
        snap.folder.mkdir()
        snap.ram.write_bytes(b"x")
        os.utime(snap.folder, (time.time() - age, time.time() - age))
        return snap

    old, kept, new = (made(snapshot_store.SnapshotPaths(k), age) for k, age in
                      (("old", 300), ("kept", 200), ("new", 100)))
    spares = [made(snapshot_store.spare_of(s), 50) for s in (old, kept, new)]
    assert [s.key for s in spares] == ["old-spare", "kept-spare", "new-spare"]
    claimed = snapshot_store.claim(spares[1])
    assert claimed is not None and claimed.claimed and claimed.ram.read_bytes() == b"x"
    assert not spares[1].exists() and snapshot_store.claim(spares[1]) is None  # one taker
    # A spare goes with its snapshot: "old" is the least recently used of the other two.
    snapshot_store.prune_snapshots(keep=kept, limit=2)
    assert {s.key for s in (old, kept, new, *spares) if s.exists()} == {
        "kept", "new", "new-spare"}
    assert claimed.exists()  # this process's, alive
    dead = snapshot_store.SnapshotPaths(".claimed-999999999-x")
    dead.folder.mkdir()
    snapshot_store.prune_snapshots(keep=kept, limit=2)
    assert not dead.exists() and claimed.exists()


def test_spares_are_on_by_default_and_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SANDBOX_KERNEL_SPARE_SNAPSHOTS", raising=False)
    assert VMConfig().spare_snapshots is True
    monkeypatch.setenv("SANDBOX_KERNEL_SPARE_SNAPSHOTS", "0")
    assert VMConfig().spare_snapshots is False
    assert "spare_snapshots" not in VMConfig().machine_key()  # one snapshot, with or without


def test_a_spare_s_qemu_runs_niced(tmp_path: Path) -> None:
    proc = QemuProcess(["sh", "-c", "nice"], tmp_path / "log", nice=10)
    assert proc.popen.wait() == 0
    assert (tmp_path / "log").read_text().strip() == "10"


async def test_a_stop_cancelled_while_the_spare_stops_lets_the_spare_finish() -> None:
    # The spare's VM stops in its task's clean-up; a cancelled stop() must not cut that short.
    cleaned = asyncio.Event()

    async def making() -> bool:
        try:
            await asyncio.sleep(60)
        finally:
            await asyncio.sleep(0.2)  # its VM's teardown
            cleaned.set()
        return True

    vm = SandboxVM(VMConfig(), "tcg")
    vm._spare_task = asyncio.create_task(making())
    await asyncio.sleep(0)
    stopping = asyncio.create_task(vm.stop())
    await asyncio.sleep(0.05)
    stopping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopping
    await asyncio.wait_for(cleaned.wait(), 5)


def test_a_restore_inherits_its_ports_and_a_monitor_that_loads_the_state(
        tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    fds = {"cmd": 11, "evt": 12, "share": 13, "wheels": 14, "loader": 15}
    cmd = qemu.command_line(VMConfig(), ImagePaths(tmp_path), "tcg", run, "defer", ports=fds)
    for name in ("cmd", "evt", "share", "wheels"):
        assert f"socket,id={name},fd={fds[name]}" in cmd
    assert "server=on" not in " ".join(cmd[:cmd.index("-qmp")])  # nothing listens for them
    assert cmd[-6:] == ["-incoming", "defer", "-chardev", "socket,id=loader,fd=15",
                        "-mon", "chardev=loader,mode=control"]

