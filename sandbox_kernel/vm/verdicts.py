"""The accelerator verdicts: whether KVM works on this host, as a probe boot found it, kept
per host kernel, QEMU version and CPU model."""

import json
import os
import platform
from dataclasses import dataclass
from pathlib import Path

from sandbox_kernel import paths
from sandbox_kernel.vm.config import VMConfig
from sandbox_kernel.vm.qemu import qemu_version


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


def store_verdict(config: VMConfig, verdict: Verdict) -> None:
    data = _load()
    data[host_key(config)] = {"accel": verdict.accel, "reason": verdict.reason}
    target = _verdict_file()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(target)


def cached_verdict(config: VMConfig) -> Verdict | None:
    found = _load().get(host_key(config))
    return Verdict(found["accel"], found["reason"], cached=True) if found else None


def configured_verdict(config: VMConfig) -> Verdict | None:
    """The accelerator the settings name, or the cached verdict; None: a probe must decide."""
    if config.accel != "auto":
        return Verdict(config.accel, "set by configuration (accel or SANDBOX_KERNEL_ACCEL)")
    return cached_verdict(config)
