"""Choosing KVM or TCG: by a real probe boot, since /dev/kvm can exist and still be broken."""

import json
import os
import platform
from dataclasses import dataclass, replace
from pathlib import Path

from sandbox_kernel import paths
from sandbox_kernel.errors import SandboxError
from sandbox_kernel.image.store import ImagePaths
from sandbox_kernel.vm.config import VMConfig
from sandbox_kernel.vm.qemu import qemu_version

_PROBE_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class Verdict:
    accel: str
    reason: str
    cached: bool = False


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def host_key(config: VMConfig) -> str:
    return f"{platform.release()}|{qemu_version(config.qemu_binary)}|{_cpu_model()}"


def _verdict_file() -> Path:
    return paths.cache_dir() / "accel-verdicts.json"


def _load() -> dict[str, dict[str, str]]:
    try:
        data: dict[str, dict[str, str]] = json.loads(_verdict_file().read_text())
        return data
    except (OSError, ValueError):
        return {}


def _store(key: str, verdict: Verdict) -> None:
    data = _load()
    data[key] = {"accel": verdict.accel, "reason": verdict.reason}
    target = _verdict_file()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(target)


def cached_verdict(config: VMConfig) -> Verdict | None:
    found = _load().get(host_key(config))
    return Verdict(found["accel"], found["reason"], cached=True) if found else None


async def probe_kvm(config: VMConfig) -> Verdict:
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return Verdict("tcg", "/dev/kvm is missing or not accessible")
    from sandbox_kernel.vm.machine import SandboxVM

    probe_config = replace(config, boot_attempts=1, boot_timeout_s=_PROBE_TIMEOUT_S,
                           snapshots=False)
    vm = SandboxVM(probe_config, accel="kvm")
    try:
        await vm.start()
    except SandboxError as exc:
        reason = getattr(exc, "reason", str(exc))
        return Verdict("tcg", f"a KVM probe boot failed: {reason}")
    finally:
        await vm.stop()
    return Verdict("kvm", "a KVM probe boot reached the guest agent")


async def choose_accelerator(config: VMConfig, image: ImagePaths | None = None) -> Verdict:
    if config.accel != "auto":
        return Verdict(config.accel, "set by configuration (accel or SANDBOX_KERNEL_ACCEL)")
    cached = cached_verdict(config)
    if cached is not None:
        return cached
    verdict = await probe_kvm(config)
    _store(host_key(config), verdict)
    return verdict
