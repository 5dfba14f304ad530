"""How the kernel gets its VM: the one the app started early in a thread, or a new one; and the
log line that says which settings the VM runs with.

The kernel takes any ``VMStarter`` (the unit tests give it a fake guest); this module, which
imports the VM manager, is loaded in a thread like kernel/bridge.py.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Awaitable, Callable
from typing import Protocol

from sandbox_kernel.channel import DualPortChannel
from sandbox_kernel.errors import SandboxError
from sandbox_kernel.kernel.settings import described
from sandbox_kernel.vm.config import VMConfig
from sandbox_kernel.vm.early import EarlyVM
from sandbox_kernel.vm.launch import start_vm
from sandbox_kernel.vm.machine import SandboxVM
from sandbox_kernel.vm.verdicts import configured_verdict


class GuestVM(Protocol):
    """What the kernel needs of a VM: its channel to the guest agent, a way to end it, and
    word of its shared folder (why it or the wheelhouse failed; the limits it hits, told from
    a thread)."""

    on_share_notice: Callable[[str], None]
    share_failure: str
    wheelhouse_failure: str

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
        log.info("%s", settings_in_force(vm))
        vm.begin_spare()  # for the next kernel: the VM's stop ends it
        return vm

    return start


def settings_in_force(vm: SandboxVM) -> str:
    """One line for the kernel's log, so that settings that did not take effect (a config
    file that was not read, an environment variable) show: the settings, then what the start
    made of them."""
    started = "booted cold"
    if vm.started_from == "snapshot":
        started = ("restored from a spare snapshot (a Python hash seed and address layout of "
                   "its own)" if vm.own_layout else "restored from the shared snapshot")
    folder = f"; image folder {vm.image.folder}" if vm.image is not None else ""
    return (f"sandbox VM ready in {vm.boot_seconds or 0:.2f} s, {started}: "
            f"{described(vm.config)}; running under {vm.accel} ({_accelerator_reason(vm)})"
            f"{folder}")


def _accelerator_reason(vm: SandboxVM) -> str:
    try:  # the verdict the start used: set by the settings, or cached by now
        verdict = configured_verdict(vm.config)
    except (SandboxError, OSError, subprocess.SubprocessError):  # a log line must not fail
        return "reason unknown"
    if verdict is None or verdict.accel != vm.accel:
        return "reason unknown"
    return verdict.reason
