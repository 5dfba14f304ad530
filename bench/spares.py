"""Starts from a spare snapshot (the default when one is ready): each kernel takes the spare the
one before it made, and makes the next before it is shut down."""

import time

from bench import kernels as k
from sandbox_kernel.image.store import image_paths
from sandbox_kernel.vm.config import VMConfig
from sandbox_kernel.vm.snapshot_store import snapshot_for, spare_of
from sandbox_kernel.vm.verdicts import configured_verdict

ON = {"SANDBOX_KERNEL_SPARE_SNAPSHOTS": "1"}
SPARE_TIMEOUT = 300


def _spare_ready() -> bool:
    # The spare of the snapshot these kernels restore (the cache may hold others, of other
    # settings or an older snapshot format).
    config = VMConfig(spare_snapshots=True)
    verdict = configured_verdict(config)
    assert verdict is not None, "a kernel has run with these settings"
    snap = snapshot_for(config, image_paths(config.image), verdict.accel)
    return spare_of(snap).exists()


def _wait_for_spare() -> float:
    started = time.perf_counter()
    while not _spare_ready():
        if time.perf_counter() - started > SPARE_TIMEOUT:
            raise TimeoutError(f"no spare snapshot after {SPARE_TIMEOUT} s")
        time.sleep(0.1)
    return time.perf_counter() - started


def starts(rounds: int) -> tuple[list[float], list[float]]:
    """Seconds to the first result of ``rounds`` kernels started from a spare, and seconds
    from each one's first result until its own spare was ready."""
    with k.kernel(k.SANDBOX, ON) as (_, kc):  # the first spare
        k.execute(kc, "1+1")
        _wait_for_spare()
    started_in, made_in = [], []
    for _ in range(rounds):
        assert _spare_ready()
        began = time.perf_counter()
        with k.kernel(k.SANDBOX, ON) as (_, kc):
            reply = k.execute(kc, "1+1")
            started_in.append(time.perf_counter() - began)
            assert reply["status"] == "ok", reply
            made_in.append(_wait_for_spare())
    return started_in, made_in
