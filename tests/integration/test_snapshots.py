"""Issue 4 on real VMs: snapshot capture and restore, reseeding, concurrent restores."""

import asyncio
import hashlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import pytest_asyncio

from sandbox_kernel.vm import VMConfig, running_vm, start_vm
from sandbox_kernel.vm import snapshot_store as snapshots
from tests.integration.vmtools import run

pytestmark = [pytest.mark.vm, pytest.mark.timeout(300), pytest.mark.asyncio(loop_scope="module")]

RANDOMNESS = ("import os, random, uuid, json\n"
              "import numpy as np\n"
              "print(json.dumps([os.urandom(16).hex(), random.random(), str(uuid.uuid4()),"
              " float(np.random.rand())]))")


def config(fresh_python: bool = True) -> VMConfig:
    return VMConfig(snapshots=True, boot_timeout_s=60, fresh_python=fresh_python)


def the_snapshots_python() -> VMConfig:
    """A restore that keeps the snapshot's warm worker, as the setting allows."""
    return config(fresh_python=False)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def snapshot_ready() -> AsyncIterator[snapshots.SnapshotPaths]:
    """A cold boot that takes the snapshot (or finds one already there)."""
    vm = await start_vm(config())
    try:
        assert vm.image is not None and vm.accel is not None
        snap = snapshots.snapshot_for(vm.config, vm.image, vm.accel)
        assert snap.exists(), "the first start with snapshots on must leave a snapshot"
        # The VM that took the snapshot is gone; the start goes on from the snapshot.
        assert vm.started_from == "snapshot"
        assert (await run(vm, "print('captured')")).stdout == "captured\n"
        yield snap
    finally:
        await vm.stop()


async def test_start_restores_the_snapshot(snapshot_ready: snapshots.SnapshotPaths) -> None:
    async with running_vm(the_snapshots_python()) as vm:
        assert vm.started_from == "snapshot"
        out = await run(vm, "import sys\nprint('numpy' in sys.modules, 'np' in dir())")
        # Warmed modules are imported, but nothing is in the user's namespace.
        assert out.stdout == "True False\n"
        # The warm-up cells left no output history behind, and this is cell 2 (IPython counts
        # a cell before it runs, so execution_count is 3 inside it, as under ipykernel).
        out = await run(vm, "print(repr(_), Out, len(In), get_ipython().execution_count,"
                            " [k for k in globals() if k[:1] == '_' and k[1:].isdigit()],"
                            " get_ipython().history_manager.output_hist_reprs)")
        assert out.stdout == "'' {} 3 3 [] {}\n"
        assert (await run(vm, "x = 41\nx += 1\nprint(x)")).stdout == "42\n"


async def test_the_snapshot_holds_the_completer_and_leaves_its_objects_to_no_collection(
        snapshot_ready: snapshots.SnapshotPaths) -> None:
    async with running_vm(the_snapshots_python()) as vm:
        out = await run(vm, "import gc, sys\n"
                            "print(get_ipython()._completer is not None, 'jedi' in sys.modules,"
                            " gc.get_freeze_count() > 50_000)")
        assert out.stdout == "True True True\n", out.stderr
        # Frozen, the snapshot's objects are not traversed: what a full collection still
        # walks is a small fraction of them.
        out = await run(vm, "gc.collect()\n"
                            "print(len(gc.get_objects()) * 20 < gc.get_freeze_count())")
        assert out.stdout == "True\n", out.stderr


async def test_two_restores_from_one_file_differ_in_randomness(
        snapshot_ready: snapshots.SnapshotPaths) -> None:
    first, second = await asyncio.gather(start_vm(config()), start_vm(config()))
    try:
        assert first.started_from == second.started_from == "snapshot"
        a, b = await asyncio.gather(run(first, RANDOMNESS), run(second, RANDOMNESS))
        values_a, values_b = json.loads(a.stdout), json.loads(b.stdout)
        for x, y in zip(values_a, values_b, strict=True):
            assert x != y, (values_a, values_b)
    finally:
        await asyncio.gather(first.stop(), second.stop())


# Debian's python3 is not position-independent: its own code is at the same address in every
# process. Its heap, libraries and stack are not.
LAYOUT = ("import json\n"
          "maps = open('/proc/self/maps').read().splitlines()\n"
          "print(json.dumps([hash('abc'), id(object()),"
          " *(next(m for m in maps if m.endswith(end)).split()[0]"
          "   for end in ('[heap]', '[stack]'))]))")


async def test_each_restored_kernel_has_its_own_hash_seed_and_address_layout(
        snapshot_ready: snapshots.SnapshotPaths) -> None:
    seen = []
    for _ in range(2):
        async with running_vm(config()) as vm:
            assert vm.started_from == "snapshot"
            seen.append(json.loads((await run(vm, LAYOUT)).stdout))
    for x, y in zip(*seen, strict=True):
        assert x != y, seen


async def test_a_fresh_python_after_a_restore_has_the_preloaded_modules_and_its_time_zone(
        snapshot_ready: snapshots.SnapshotPaths, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "EST5EDT")
    async with running_vm(config()) as vm:
        out = await run(vm, "import os, sys, threading\n"
                            "[t.join() for t in threading.enumerate() if t.name == 'preload']\n"
                            "print('numpy' in sys.modules, 'matplotlib.pyplot' in sys.modules,"
                            " 'np' in dir(), os.environ.get('TZ'))")
        assert out.stdout == "True True False EST5EDT,M3.2.0,M11.1.0\n", out.stderr


async def test_an_interrupt_while_the_fresh_python_starts_is_kept_for_the_cell(
        snapshot_ready: snapshots.SnapshotPaths) -> None:
    async with running_vm(config()) as vm:  # no shared folder: the worker is still starting
        execution = asyncio.create_task(run(vm, "print('ran')"))
        await asyncio.sleep(0.2)
        vm.interrupt()
        out = await asyncio.wait_for(execution, 60)
        assert out.complete.ename == "KeyboardInterrupt", out.complete
        assert (await run(vm, "print('next')")).stdout == "next\n"


async def test_the_snapshots_python_shares_its_hash_seed_when_asked_to(
        snapshot_ready: snapshots.SnapshotPaths) -> None:
    # What the setting trades away: the restores share the snapshot's worker.
    seen = []
    for _ in range(2):
        async with running_vm(the_snapshots_python()) as vm:
            seen.append(json.loads((await run(vm, LAYOUT)).stdout))
    assert seen[0][0] == seen[1][0], seen


async def test_restored_guest_has_the_current_wall_clock(
        snapshot_ready: snapshots.SnapshotPaths) -> None:
    import time

    async with running_vm(config()) as vm:
        out = await run(vm, "import time\nprint(time.time())")
        assert abs(float(out.stdout) - time.time()) < 5


async def test_several_concurrent_restores(snapshot_ready: snapshots.SnapshotPaths) -> None:
    vms = await asyncio.gather(*(start_vm(config()) for _ in range(4)))
    try:
        assert all(vm.started_from == "snapshot" for vm in vms)
        outs = await asyncio.gather(*(run(vm, f"print({i} * 2)") for i, vm in enumerate(vms)))
        assert [o.stdout for o in outs] == [f"{i * 2}\n" for i in range(4)]
    finally:
        await asyncio.gather(*(vm.stop() for vm in vms))


def _digest(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "blake2b").hexdigest()


async def test_restored_vms_map_the_snapshot_ram_and_never_write_it(
        snapshot_ready: snapshots.SnapshotPaths) -> None:
    before = _digest(snapshot_ready.ram)
    async with running_vm(config()) as vm:
        assert vm.proc is not None
        mappings = Path(f"/proc/{vm.proc.pid}/maps").read_text().splitlines()
        ram = [m.split() for m in mappings if m.endswith(str(snapshot_ready.ram))]
        assert len(ram) == 1 and ram[0][1] == "rw-p", ram  # private: copy-on-write
        filled = await run(vm, "import numpy as np\n"
                               "a = np.full(300 * 2**20 // 8, 0x5A5A5A5A5A5A5A5A, np.uint64)\n"
                               "print(int(a[::4096].sum() % 1000))")
        assert filled.stdout.strip().isdigit(), filled.events
    assert _digest(snapshot_ready.ram) == before


def _truncate_state(snap: snapshots.SnapshotPaths) -> None:
    snap.state.write_bytes(snap.state.read_bytes()[:1000])


def _delete_ram(snap: snapshots.SnapshotPaths) -> None:
    snap.ram.unlink()


def _zero_ram(snap: snapshots.SnapshotPaths) -> None:
    """The guest resumes on empty memory, and dies."""
    size = snap.ram.stat().st_size
    snap.ram.unlink()
    with snap.ram.open("wb") as fh:
        fh.truncate(size)


def _stopped_state(snap: snapshots.SnapshotPaths) -> None:
    """The state says the guest was stopped when it was saved: QEMU loads it, and then waits
    for a ``cont`` that no restore sends."""
    running = b"\x00\x00\x00\x08running\x00"  # the global state's run state: length, name
    state = snap.state.read_bytes()
    assert state.count(running) == 1
    snap.state.write_bytes(state.replace(running, b"\x00\x00\x00\x07paused\x00\x00"))


@pytest.mark.parametrize(("breakage", "log_says"), [
    (_truncate_state, ("snapshot restore failed", "load of migration failed")),
    (_delete_ram, ("cannot open the snapshot", "No such file or directory")),
    (_zero_ram, ("snapshot restore failed",)),
    (_stopped_state, ("left the guest paused",)),
])
async def test_a_broken_snapshot_falls_back_to_a_cold_boot(
        snapshot_ready: snapshots.SnapshotPaths, caplog: pytest.LogCaptureFixture,
        breakage: Callable[[snapshots.SnapshotPaths], None], log_says: tuple[str, ...]) -> None:
    caplog.set_level(logging.INFO, logger="sandbox_kernel")
    breakage(snapshot_ready)
    marker = snapshot_ready.folder / "broken"  # inode numbers get reused; a file does not
    marker.touch()
    async with running_vm(VMConfig(snapshots=True, boot_timeout_s=60,
                                   restore_timeout_s=10)) as vm:
        # It booted cold, took a new snapshot and went on from that.
        assert vm.started_from == "snapshot"
        assert (await run(vm, "print('fine')")).stdout == "fine\n"
    for words in log_says:
        assert words in caplog.text
    assert "booting cold instead" in caplog.text
    assert "snapshot taken" in caplog.text
    assert snapshot_ready.exists() and not marker.exists()


async def test_snapshots_can_be_turned_off(monkeypatch: pytest.MonkeyPatch,
                                           snapshot_ready: snapshots.SnapshotPaths) -> None:
    monkeypatch.setenv("SANDBOX_KERNEL_SNAPSHOTS", "0")
    off = VMConfig()
    assert off.snapshots is False
    assert snapshots.describe(off).startswith("off")
    async with running_vm(off) as vm:
        assert vm.started_from == "cold"


async def test_a_warm_up_past_its_deadline_leaves_no_snapshot_and_a_working_vm(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from sandbox_kernel.vm import machine

    monkeypatch.setattr(machine, "_CAPTURE_TIMEOUT_S", 0.5)  # preloading numpy takes longer
    caplog.set_level(logging.INFO, logger="sandbox_kernel")
    own_slot = VMConfig(snapshots=True, boot_timeout_s=60, memory_mb=768)
    async with running_vm(own_slot) as vm:
        assert vm.started_from == "cold"
        assert (await run(vm, "print('fine')")).stdout == "fine\n"
        assert vm.image is not None and vm.accel is not None
        assert not snapshots.snapshot_for(own_slot, vm.image, vm.accel).exists()
    assert "booting again without taking one" in caplog.text
