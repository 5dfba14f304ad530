"""How the kernel gets its VM: the one the app started early in a thread, or a new one.

The kernel takes any ``VMStarter`` (the unit tests give it a fake guest); this module, which
imports the VM manager, is loaded in a thread like kernel/bridge.py.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from sandbox_kernel.channel import DualPortChannel
from sandbox_kernel.vm.config import VMConfig
from sandbox_kernel.vm.early import EarlyVM
from sandbox_kernel.vm.launch import start_vm
from sandbox_kernel.vm.machine import SandboxVM


class GuestVM(Protocol):
    """What the kernel needs of a VM: its channel to the guest agent, and a way to end it."""

    @property
    def channel(self) -> DualPortChannel | None: ...

    async def stop(self) -> None: ...


VMStarter = Callable[[VMConfig], Awaitable[GuestVM]]


def default_starter(early: EarlyVM | None, log: logging.Logger) -> VMStarter:
    """Takes over ``early`` when it was started with the kernel's settings, or starts a VM."""

    async def start(config: VMConfig) -> SandboxVM:
        vm = await early.take(config) if early is not None else None
        if vm is None:  # none started early, or with other settings
            vm = await start_vm(config)  # cancelled by a shutdown during its start
        log.info("sandbox VM ready in %.2f s (%s, %s)", vm.boot_seconds or 0, vm.accel,
                 vm.started_from)
        return vm

    return start
