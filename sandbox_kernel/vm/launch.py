"""Starting a VM: the accelerator chosen first (by a real probe boot under KVM, once per host,
since /dev/kvm can exist and still be broken), then the VM started with it."""

import contextlib
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import replace

from sandbox_kernel.errors import SandboxError, VMStartError
from sandbox_kernel.share.plan import SharePlan
from sandbox_kernel.share.wheelhouse import WheelhousePlan
from sandbox_kernel.vm.config import VMConfig
from sandbox_kernel.vm.machine import SandboxVM
from sandbox_kernel.vm.restore import HeadStart
from sandbox_kernel.vm.verdicts import Verdict, configured_verdict, store_verdict

log = logging.getLogger(__name__)

_PROBE_TIMEOUT_S = 20.0


async def probe_kvm(config: VMConfig) -> Verdict:
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return Verdict("tcg", "/dev/kvm is missing or not accessible")
    probe_config = replace(config, boot_attempts=1, boot_timeout_s=_PROBE_TIMEOUT_S,
                           snapshots=False)
    vm = SandboxVM(probe_config, accel="kvm")
    try:
        await vm.start()
    except SandboxError as exc:
        reason = exc.reason if isinstance(exc, VMStartError) else str(exc)
        return Verdict("tcg", f"a KVM probe boot failed: {reason}")
    finally:
        await vm.stop()
    return Verdict("kvm", "a KVM probe boot reached the guest agent")


async def choose_accelerator(config: VMConfig) -> Verdict:
    verdict = configured_verdict(config)
    if verdict is None:
        verdict = await probe_kvm(config)
        store_verdict(config, verdict)
    return verdict


async def start_vm(config: VMConfig | None = None,
                   head_start: HeadStart | None = None) -> SandboxVM:
    """A started VM; nothing is left behind when the start fails or is cancelled.
    ``head_start``: a restore launched already (see ``restore.launch_early``)."""
    config = config or VMConfig()
    accel = head_start.accel if head_start else (await choose_accelerator(config)).accel
    vm = SandboxVM(config, accel)
    try:
        await vm.start(head_start)
        if config.share is not None or config.wheelhouse is not None:
            await _share(vm, config.share or SharePlan(None, "none was asked for."),
                         config.wheelhouse)
    except BaseException:
        await vm.stop()
        raise
    return vm


async def _share(vm: SandboxVM, plan: SharePlan, wheelhouse: WheelhousePlan | None) -> None:
    """A folder or wheelhouse that cannot be shared leaves the VM without it, and says why,
    rather than without a kernel. (``share_folder`` leaves out each part that fails on its
    own; what fails here is the guest's answer, after it may have mounted both.)"""
    try:
        await vm.share_folder(plan, wheelhouse)
    except (SandboxError, OSError) as exc:
        log.warning("the folder %s could not be shared: %s", plan.settings and
                    plan.settings.folder, exc)
        vm.share_failure = f"it could not be mounted ({exc})"
        if wheelhouse is not None and wheelhouse.settings is not None:
            vm.wheelhouse_failure = vm.share_failure
        await vm.share_folder(SharePlan(None, vm.share_failure), wheelhouse and WheelhousePlan(
            None, vm.wheelhouse_failure or wheelhouse.reason))


@contextlib.asynccontextmanager
async def running_vm(config: VMConfig | None = None) -> AsyncIterator[SandboxVM]:
    vm = await start_vm(config)
    try:
        yield vm
    finally:
        await vm.stop()
