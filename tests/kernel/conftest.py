from collections.abc import Iterator

import pytest

from tests.kernel.kernels import Kernel, start_kernel


@pytest.fixture(scope="module")
def kernel() -> Iterator[Kernel]:
    """One kernel for a module's tests, which may leave variables for each other."""
    km, kc = start_kernel()
    yield km, kc
    kc.stop_channels()
    km.shutdown_kernel(now=False)
