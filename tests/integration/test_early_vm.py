"""The kernel's head start: a VM started in a thread, then taken over by another event loop."""

import asyncio
import contextlib
import time
from dataclasses import replace
from types import SimpleNamespace

import pytest

from sandbox_kernel.image.store import image_paths
from sandbox_kernel.vm import VMConfig, port_pairs, running_vm, snapshot_store
from sandbox_kernel.vm.early import EarlyVM
from sandbox_kernel.vm.launch import start_vm
from sandbox_kernel.vm.restore import launch_early
from sandbox_kernel.vm.verdicts import configured_verdict
from tests.integration.vmtools import run
from tests.leftovers import qemu_processes, run_dirs

pytestmark = [pytest.mark.vm, pytest.mark.timeout(300), pytest.mark.asyncio(loop_scope="module")]


@pytest.fixture(scope="module")
def snapshot_exists() -> None:
    async def boot_once() -> None:
        async with running_vm(VMConfig(snapshots=True)):
            pass  # the first start takes the snapshot

    asyncio.run(boot_once())


async def test_a_vm_started_early_is_taken_over_and_outlives_its_thread(
        snapshot_exists: None) -> None:
    early = EarlyVM.begin(VMConfig(snapshots=True))
    vm = await early.take(VMConfig(snapshots=True))
    assert vm is not None and vm.started_from == "snapshot"
    try:
        # QEMU dies with the thread that started it; that thread must not have ended.
        await asyncio.sleep(0.5)
        assert (await run(vm, "print(6 * 7)")).stdout == "42\n"
        assert (await run(vm, "import os; print(len(os.urandom(8)))")).stdout == "8\n"
    finally:
        await vm.stop()


async def test_a_vm_started_with_other_settings_is_not_taken(snapshot_exists: None) -> None:
    before_qemu, before_dirs = qemu_processes(), run_dirs()
    early = EarlyVM.begin(VMConfig(snapshots=True))
    assert await early.take(replace(VMConfig(snapshots=True), memory_mb=768)) is None
    assert qemu_processes() <= before_qemu and run_dirs() <= before_dirs


@pytest.mark.parametrize("after_s", [0.0, 0.05, 1.0])
async def test_discarding_an_early_start_leaves_nothing(snapshot_exists: None,
                                                        after_s: float) -> None:
    # At once, while QEMU loads, and once the VM is ready and handed over to nobody.
    before_qemu, before_dirs = qemu_processes(), run_dirs()
    early = EarlyVM.begin(VMConfig(snapshots=True))
    await asyncio.sleep(after_s)
    started = time.monotonic()
    await early.discard()
    assert time.monotonic() - started < 5
    assert qemu_processes() <= before_qemu and run_dirs() <= before_dirs


@pytest.mark.parametrize("after_s", [0.0, 0.05, 0.15, 1.0])
async def test_cancelling_the_take_over_leaves_nothing(snapshot_exists: None,
                                                       after_s: float) -> None:
    # A kernel shut down while its VM starts cancels the task waiting in take(); by the time
    # that task has ended, the VM must be gone, since the process exits right after.
    before_qemu, before_dirs = qemu_processes(), run_dirs()
    early = EarlyVM.begin(VMConfig(snapshots=True))
    task = asyncio.create_task(early.take(VMConfig(snapshots=True)))
    await asyncio.sleep(after_s)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        vm = await task
        await vm.stop()  # it won the race: ready before the cancellation
    assert qemu_processes() <= before_qemu and run_dirs() <= before_dirs


async def test_a_broken_snapshot_launched_early_gives_way_to_the_vm_manager(
        snapshot_exists: None) -> None:
    # The head start has QEMU load the state before the VM manager is imported; when QEMU
    # cannot, the manager starts its own way (here: finds the snapshot broken, boots cold).
    config = VMConfig(snapshots=True)
    image = image_paths(config.image)
    verdict = configured_verdict(config)
    assert verdict is not None
    snap = snapshot_store.snapshot_for(config, image, verdict.accel)
    with snap.state.open("r+b") as state:
        state.truncate(snap.state.stat().st_size // 2)
    before_qemu, before_dirs = qemu_processes(), run_dirs()
    vm = await EarlyVM.begin(config).take(config)
    assert vm is not None
    try:
        assert (await run(vm, "print(6 * 7)")).stdout == "42\n"
    finally:
        await vm.stop()
    assert snap.exists() and snap.state.stat().st_size > 0  # taken again
    assert qemu_processes() <= before_qemu and run_dirs() <= before_dirs


async def test_the_vm_manager_sets_the_clock_the_early_reseed_carried(
        snapshot_exists: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # The reseed written before QEMU starts carries the launch's time, which is old by the
    # time the guest reads it; here it is 100 s old. Taking the VM over sets the clock.
    real_time = time.time
    monkeypatch.setattr(port_pairs, "time", SimpleNamespace(time=lambda: real_time() - 100))
    config = VMConfig(snapshots=True)
    head = launch_early(config)
    assert head is not None
    monkeypatch.undo()
    vm = await start_vm(config, head)
    try:
        before = time.time()
        guest = float((await run(vm, "import time; print(time.time())")).stdout)
        assert before - 1 < guest < time.time() + 1
    finally:
        await vm.stop()

