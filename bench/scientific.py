"""The scientific image (``make scientific``): its snapshot start, and the first
``import pandas`` in a fresh kernel, which its snapshot's preload should make instant."""

import time

from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

from bench import kernels as k

SCIENTIFIC = "sandbox-scientific"


def installed() -> bool:
    try:
        KernelSpecManager().get_kernel_spec(SCIENTIFIC)
    except NoSuchKernel:
        return False
    return True


def first_import_ms(module: str) -> float:
    """The round trip of a fresh kernel's first ``import module``, once it has answered."""
    with k.kernel(SCIENTIFIC) as (_, kc):
        k.execute(kc, "pass")
        started = time.perf_counter()
        reply = k.execute(kc, f"import {module}")
        elapsed = time.perf_counter() - started
        assert reply["status"] == "ok", reply
    return elapsed * 1e3
