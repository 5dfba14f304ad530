"""QEMU command lines for the sandbox microvm."""

import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from sandbox_kernel import paths
from sandbox_kernel.constants import CMD_PORT, EVT_PORT, SHARE_PORT, WHEELHOUSE_PORT
from sandbox_kernel.errors import QemuNotFound
from sandbox_kernel.image.store import ImagePaths
from sandbox_kernel.vm.config import VMConfig
from sandbox_kernel.vm.port_pairs import LOADER
from sandbox_kernel.vm.rundir import RunDir


def qemu_path(binary: str) -> str:
    found = shutil.which(binary)
    if found is None:
        raise QemuNotFound(binary)
    return found


@cache
def qemu_version(binary: str) -> str:
    # Remembered per binary file: running QEMU for it would slow every kernel start.
    path = qemu_path(binary)
    stat = os.stat(path)
    key = f"{os.path.realpath(path)}|{stat.st_mtime_ns}|{stat.st_size}"
    memo = paths.cache_dir() / "qemu-versions.json"
    try:
        known: dict[str, str] = json.loads(memo.read_text())
    except (OSError, ValueError):
        known = {}
    if isinstance(known.get(key), str):
        return known[key]
    out = subprocess.run([path, "--version"], capture_output=True, text=True, check=True).stdout
    version = out.splitlines()[0].removeprefix("QEMU emulator version ").strip()
    with contextlib.suppress(OSError):
        memo.parent.mkdir(parents=True, exist_ok=True)
        part = memo.with_name(f"{memo.name}.{os.getpid()}")
        part.write_text(json.dumps({**known, key: version}))
        part.replace(memo)
    return version


@cache
def host_tsc_khz() -> int | None:
    """Under TCG the guest reads the host's TSC, so the host's rate is the guest's."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                return round(float(line.split(":", 1)[1]) * 1000)
    except (OSError, ValueError):
        pass
    return None


def timing_args(accel: str) -> list[str]:
    # A loaded host makes the guest's PIT-based TSC calibration fail under TCG, and the boot
    # then hangs ("tsc: Unable to calibrate against PIT"); tell the kernel the rate instead.
    khz = host_tsc_khz() if accel == "tcg" else None
    return [f"tsc_early_khz={khz}", "tsc=reliable"] if khz else []


def cpu_model(accel: str) -> str:
    # "host" trips over MSR 0x10a on nested KVM; "max" is host passthrough there. Under TCG,
    # hiding ERMS keeps glibc's memcpy and the guest kernel's copies off `rep movsb`, which TCG
    # runs a byte at a time: copies get about five times faster.
    return "max,-erms" if accel == "tcg" else "max"


def kernel_args(config: VMConfig) -> list[str]:
    """The guest kernel's command line but for the host's timing figures. A snapshot holds a
    kernel booted with it, so it is part of the snapshot's key."""
    return [
        "console=ttyS0", "quiet", "loglevel=4", "panic=-1", "reboot=t", "random.trust_cpu=on",
        # The crypto self-tests are slow under TCG, and nothing on the host relies on
        # the guest's crypto.
        "cryptomgr.notests",
        # khugepaged would rebuild huge pages after a restore, copying tens of MB of guest
        # memory that the host then holds for each VM.
        "transparent_hugepage=never",
        f"sandbox.tmpsize={config.tmp_size}", f"sandbox.homesize={config.home_size}",
        f"sandbox.workermem={config.worker_memory_mb}",
        f"sandbox.workerpids={config.worker_processes}",
        *GUEST_HARDENING,
    ]


# What the cell's code, as the unprivileged user, must not have in the guest: kernel
# addresses, the kernel log, tracing other processes, user namespaces (the way to most
# kernel attack surface from an unprivileged user). /proc hides other users' processes too
# (guest/init). KASLR is not among them: a PVH boot skips the decompressor that randomises
# the kernel, and every VM restored from one snapshot shares its layout anyway.
GUEST_HARDENING = (
    "sysctl.kernel.kptr_restrict=2", "sysctl.kernel.dmesg_restrict=1",
    "sysctl.kernel.yama.ptrace_scope=2", "sysctl.user.max_user_namespaces=0",
    "sysctl.kernel.unprivileged_bpf_disabled=1", "sysctl.kernel.perf_event_paranoid=3",
)


@dataclass(frozen=True)
class GuestRam:
    """Guest RAM in a file rather than anonymous memory. A boot that takes a snapshot maps
    it shared, so the file becomes the snapshot's RAM; a restore maps it private: pages are
    read from the page cache that all restored VMs share, and copied only when written."""

    path: str
    shared: bool

    def qemu_object(self, memory_mb: int) -> str:
        path = self.path.replace(",", ",,")  # QEMU's option syntax
        return (f"memory-backend-file,id=ram,size={memory_mb}M,mem-path={path},"
                f"share={'on' if self.shared else 'off'}")


def _chardev(name: str, path: Path, ports: Mapping[str, int] | None) -> str:
    """A serial port's chardev: a socket pair's end that QEMU inherits (``port_pairs``), or a
    socket QEMU listens on in the run folder."""
    if ports is not None:
        return f"socket,id={name},fd={ports[name]}"
    return f"socket,id={name},path={path},server=on,wait=off"


def command_line(config: VMConfig, image: ImagePaths, accel: str, run: RunDir,
                 incoming: str | None = None, ram: GuestRam | None = None,
                 ports: Mapping[str, int] | None = None) -> list[str]:
    """``incoming``: where the state to restore comes from (``defer``: a QMP command says).
    ``ports``: inherited descriptors, by name, of the serial ports (``port_pairs.PORTS``) and
    perhaps of a monitor (``port_pairs.LOADER``)."""
    # Under TCG, microvm's pic/pit/rtc must stay on: turning them off hangs the guest.
    machine = "microvm,acpi=on,isa-serial=on" + (",memory-backend=ram" if ram else "")
    # A bounded translation cache keeps an idle TCG VM's host memory down (the default is 1 GiB).
    accelerator = f"tcg,tb-size={config.tcg_cache_mb}" if accel == "tcg" else accel
    cpu = cpu_model(accel)
    append = " ".join([*kernel_args(config), *timing_args(accel)])
    cmd = [
        qemu_path(config.qemu_binary),
        "-M", machine, "-accel", accelerator, "-cpu", cpu,
        "-m", str(config.memory_mb), "-smp", str(config.cpus),
        "-nodefaults", "-no-user-config", "-nographic", "-no-reboot", "-nic", "none",
        "-kernel", str(image.kernel), "-initrd", str(image.initramfs()), "-append", append,
        "-serial", f"file:{run.console_log}",
        "-drive", f"if=none,id=root,file={image.rootfs},format=raw,readonly=on",
        "-device", "virtio-blk-device,drive=root",
        "-device", "virtio-rng-device",
        "-device", "virtio-serial-device,id=vs",
        "-chardev", _chardev("cmd", run.cmd_socket, ports),
        "-device", f"virtserialport,bus=vs.0,chardev=cmd,name={CMD_PORT}",
        "-chardev", _chardev("evt", run.evt_socket, ports),
        "-device", f"virtserialport,bus=vs.0,chardev=evt,name={EVT_PORT}",
        # Always there, so that one snapshot serves every folder and wheelhouse, or none.
        "-chardev", _chardev("share", run.share_socket, ports),
        "-device", f"virtserialport,bus=vs.0,chardev=share,name={SHARE_PORT}",
        "-chardev", _chardev("wheels", run.wheelhouse_socket, ports),
        "-device", f"virtserialport,bus=vs.0,chardev=wheels,name={WHEELHOUSE_PORT}",
        "-qmp", f"unix:{run.qmp_socket},server=on,wait=off",
    ]
    if ram is not None:
        cmd += ["-object", ram.qemu_object(config.memory_mb)]
    if incoming is not None:
        cmd += ["-incoming", incoming]
    if ports is not None and LOADER in ports:
        # A monitor whose commands are written before QEMU starts (vm/restore.py).
        cmd += ["-chardev", f"socket,id={LOADER},fd={ports[LOADER]}",
                "-mon", f"chardev={LOADER},mode=control"]
    return cmd
