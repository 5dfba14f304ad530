"""Issue 4 on real VMs: snapshot capture and restore, reseeding, concurrent restores."""

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from sandbox_kernel.vm import SandboxVM, VMConfig
from sandbox_kernel.vm import snapshot as snapshots
from tests.integration.vmtools import run

pytestmark = [pytest.mark.timeout(300), pytest.mark.asyncio(loop_scope="module")]

RANDOMNESS = ("import os, random, uuid, json\n"
              "import numpy as np\n"
              "print(json.dumps([os.urandom(16).hex(), random.random(), str(uuid.uuid4()),"
              " float(np.random.rand())]))")


def config() -> VMConfig:
    return VMConfig(snapshots=True, boot_timeout_s=60)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def snapshot_ready() -> AsyncIterator[snapshots.SnapshotPaths]:
    """A cold boot that takes the snapshot (or finds one already there)."""
    vm = SandboxVM(config())
    await vm.start()
    try:
        assert vm.image is not None and vm.accel is not None
        snap = snapshots.snapshot_for(vm.config, vm.image, vm.accel)
        assert snap.exists(), "the first start with snapshots on must leave a snapshot"
        # The VM that took the snapshot keeps running, and is usable.
        assert (await run(vm, "print('captured')")).stdout == "captured\n"
        yield snap
    finally:
        await vm.stop()


async def test_start_restores_the_snapshot(snapshot_ready: snapshots.SnapshotPaths) -> None:
    async with SandboxVM(config()) as vm:
        assert vm.started_from == "snapshot"
        out = await run(vm, "import sys\nprint('numpy' in sys.modules, 'np' in dir())")
        # Warmed modules are imported, but nothing is in the user's namespace.
        assert out.stdout == "True False\n"
        # The warm-up cells left no output history behind, and this is cell 2.
        out = await run(vm, "print(repr(_), Out, len(In), get_ipython().execution_count,"
                            " [k for k in globals() if k[:1] == '_' and k[1:].isdigit()],"
                            " get_ipython().history_manager.output_hist_reprs)")
        assert out.stdout == "'' {} 3 2 [] {}\n"
        assert (await run(vm, "x = 41\nx += 1\nprint(x)")).stdout == "42\n"


async def test_two_restores_from_one_file_differ_in_randomness(
        snapshot_ready: snapshots.SnapshotPaths) -> None:
    first, second = SandboxVM(config()), SandboxVM(config())
    await asyncio.gather(first.start(), second.start())
    try:
        assert first.started_from == second.started_from == "snapshot"
        a, b = await asyncio.gather(run(first, RANDOMNESS), run(second, RANDOMNESS))
        values_a, values_b = json.loads(a.stdout), json.loads(b.stdout)
        for x, y in zip(values_a, values_b, strict=True):
            assert x != y, (values_a, values_b)
    finally:
        await asyncio.gather(first.stop(), second.stop())


async def test_restored_guest_has_the_current_wall_clock(
        snapshot_ready: snapshots.SnapshotPaths) -> None:
    import time

    async with SandboxVM(config()) as vm:
        out = await run(vm, "import time\nprint(time.time())")
        assert abs(float(out.stdout) - time.time()) < 5


async def test_several_concurrent_restores(snapshot_ready: snapshots.SnapshotPaths) -> None:
    vms = [SandboxVM(config()) for _ in range(4)]
    await asyncio.gather(*(vm.start() for vm in vms))
    try:
        assert all(vm.started_from == "snapshot" for vm in vms)
        outs = await asyncio.gather(*(run(vm, f"print({i} * 2)") for i, vm in enumerate(vms)))
        assert [o.stdout for o in outs] == [f"{i * 2}\n" for i in range(4)]
    finally:
        await asyncio.gather(*(vm.stop() for vm in vms))


async def test_a_broken_snapshot_falls_back_to_a_cold_boot(
        snapshot_ready: snapshots.SnapshotPaths,
        caplog: pytest.LogCaptureFixture) -> None:
    saved = snapshot_ready.state.read_bytes()
    snapshot_ready.state.write_bytes(saved[: len(saved) // 3])  # truncated
    try:
        async with SandboxVM(VMConfig(snapshots=True, boot_timeout_s=60)) as vm:
            assert vm.started_from == "cold"
            assert (await run(vm, "print('cold but fine')")).stdout == "cold but fine\n"
        assert "snapshot restore failed" in caplog.text
        assert "load of migration failed" in caplog.text
        assert "booting cold instead" in caplog.text
        # The broken file was deleted, and the cold boot took a whole new one.
        assert snapshot_ready.state.stat().st_size > len(saved) // 3
    finally:
        if not snapshot_ready.exists():
            snapshot_ready.state.write_bytes(saved)


async def test_snapshots_can_be_turned_off(monkeypatch: pytest.MonkeyPatch,
                                           snapshot_ready: snapshots.SnapshotPaths) -> None:
    monkeypatch.setenv("SANDBOX_KERNEL_SNAPSHOTS", "0")
    off = VMConfig()
    assert off.snapshots is False
    assert snapshots.describe(off).startswith("off")
    async with SandboxVM(off) as vm:
        assert vm.started_from == "cold"
