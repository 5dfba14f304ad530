"""Fixtures of the host-only kernel tests: a scripted guest, and the real kernel on top of it."""

from collections.abc import Iterator

import pytest

from tests.unit.kernel_fakes import (
    FakeStarter,
    InprocClient,
    KernelUnderTest,
    ScriptedGuest,
    started,
)


@pytest.fixture
def guest() -> ScriptedGuest:
    return ScriptedGuest()


@pytest.fixture
def kernel(guest: ScriptedGuest) -> Iterator[tuple[KernelUnderTest, InprocClient]]:
    with started(FakeStarter(guest)) as both:
        yield both
