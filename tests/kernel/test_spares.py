"""The kernel makes the next kernel's spare snapshot (see tests/integration/test_spares.py), and
the next kernel starts from it: its Python's hash seed is not the last one's. Before spares,
every kernel restored from one snapshot printed the same hash('abc')."""

import os
import time

import pytest

from sandbox_kernel import paths
from tests.kernel.kernels import run, running_kernel, stdout_of

pytestmark = [pytest.mark.vm, pytest.mark.timeout(600)]

ENV = {**os.environ, "SANDBOX_KERNEL_SPARE_SNAPSHOTS": "1"}


def spares() -> list[int]:
    """Each spare's inode: the next one made has another."""
    return sorted(f.stat().st_ino for f in paths.snapshots_dir().glob("*-spare"))


def hash_seed_witness(kc: object) -> str:
    reply, msgs = run(kc, "print(hash('abc'), id(object()))")  # type: ignore[arg-type]
    assert reply["content"]["status"] == "ok"
    return stdout_of(msgs)


def test_the_next_kernel_starts_from_the_spare_the_last_one_made() -> None:
    with running_kernel(env=ENV) as (_, kc):
        first = hash_seed_witness(kc)
        deadline = time.monotonic() + 300
        while not spares() and time.monotonic() < deadline:
            time.sleep(0.5)
        made = spares()
        assert len(made) == 1
    with running_kernel(env=ENV) as (_, kc):
        second = hash_seed_witness(kc)
        assert made[0] not in spares()  # taken: this kernel's alone (its own spare is another)
    assert first != second
