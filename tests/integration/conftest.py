from collections.abc import AsyncIterator

import pytest_asyncio

from sandbox_kernel.vm import SandboxVM, VMConfig, start_vm


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def vm() -> AsyncIterator[SandboxVM]:
    # The boot deadline is shorter than the test timeout, so a hung boot fails with its
    # console log instead of being killed silently.
    machine = await start_vm(VMConfig(boot_timeout_s=45, boot_attempts=2, snapshots=False))
    yield machine
    await machine.stop()
