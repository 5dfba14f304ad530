from collections.abc import Iterator

import pytest

from tests.kernel.kernels import Kernel, running_kernel


@pytest.fixture(scope="module")
def kernel() -> Iterator[Kernel]:
    """One kernel for a module's tests, which may leave variables for each other."""
    with running_kernel() as both:
        yield both
