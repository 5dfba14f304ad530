"""Spare snapshots: every VM restored from one snapshot shares its Python's hash seed and
address layout (found by the hostile-guest review); one restored from a spare, a snapshot that
no other VM has run from, has its own."""

import asyncio
import os
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from sandbox_kernel import paths
from sandbox_kernel.vm import SandboxVM, VMConfig, snapshot_store, start_vm
from tests.integration.vmtools import run
from tests.leftovers import qemu_processes

pytestmark = [pytest.mark.vm, pytest.mark.timeout(600), pytest.mark.asyncio(loop_scope="module")]

CONFIG = VMConfig(spare_snapshots=True, boot_timeout_s=90)
LAYOUT = "import random\nprint(hash('abc'), id(object()), hash(b'x'), random.random())"


@pytest_asyncio.fixture(loop_scope="module")
async def vms() -> AsyncIterator[list[SandboxVM]]:
    started: list[SandboxVM] = []
    yield started
    for vm in started:
        await vm.stop()


async def layout(vm: SandboxVM) -> list[str]:
    out = await run(vm, LAYOUT)
    assert out.complete.status == "ok", out.stderr
    return out.stdout.split()


def leftovers() -> list[str]:
    return sorted(f.name for f in paths.snapshots_dir().iterdir()
                  if f.name.startswith((".claimed-", ".capture-")))


async def test_a_vm_from_a_spare_has_its_own_hash_seed_and_layout(vms: list[SandboxVM]) -> None:
    first = await start_vm(CONFIG)
    vms.append(first)
    assert first.image is not None
    first.begin_spare()
    await first.spare_made()
    assert snapshot_store.spare_of(snapshot_store.snapshot_for(CONFIG, first.image,
                                                               first.accel)).exists()
    own = await start_vm(CONFIG)
    vms.append(own)
    assert own.started_from == "snapshot" and own.own_layout
    # No spare is ready now: these two share the snapshot, and so their hash seed and layout.
    shared = [await start_vm(CONFIG) for _ in range(2)]
    vms.extend(shared)
    assert [vm.own_layout for vm in shared] == [False, False]
    seen = [await layout(vm) for vm in (own, *shared)]
    assert seen[1][:3] == seen[2][:3]  # the finding, for VMs from one snapshot
    assert seen[1][3] != seen[2][3]  # (their random generators are reseeded)
    for i in range(3):  # hash('abc'), id(object()), hash(b'x'): its own
        assert seen[0][i] != seen[1][i]
    assert leftovers() == []  # the claimed spare went once QEMU had its files


async def test_stopping_a_vm_ends_the_spare_it_was_making(vms: list[SandboxVM]) -> None:
    vm = await start_vm(CONFIG)
    assert vm.image is not None
    spare = snapshot_store.spare_of(snapshot_store.snapshot_for(CONFIG, vm.image, vm.accel))
    spare.discard()
    before = qemu_processes()
    own = {p for p in before if p.startswith(f"{vm.proc.pid} ")}  # type: ignore[union-attr]
    vm.begin_spare()
    for _ in range(100):  # the spare's VM boots beside it, niced
        if len(qemu_processes()) > len(before):
            break
        await asyncio.sleep(0.05)
    making = qemu_processes() - before
    assert len(making) == 1 and " -n 10 " not in next(iter(making))  # exec'd: QEMU's own
    assert os.getpriority(os.PRIO_PROCESS, int(next(iter(making)).split()[0])) == 10
    await vm.stop()
    assert qemu_processes() == before - own
    assert not spare.exists() and leftovers() == []
