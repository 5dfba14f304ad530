"""Running the installed sandbox-python kernel through jupyter_client, as frontends do."""

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager, start_new_kernel

KERNEL_NAME = "sandbox-python"
BOOT_TIMEOUT = 150

Kernel = tuple[KernelManager, BlockingKernelClient]


def start_kernel(first_cell_timeout: float = BOOT_TIMEOUT, **kwargs: Any) -> Kernel:
    km, kc = start_new_kernel(kernel_name=KERNEL_NAME, startup_timeout=BOOT_TIMEOUT, **kwargs)
    # The first cell waits for the VM; take that wait here, not in a test's budget.
    reply = kc.execute_interactive("pass", timeout=first_cell_timeout)
    assert reply["content"]["status"] == "ok", reply["content"]
    return km, kc


@contextlib.contextmanager
def running_kernel(**kwargs: Any) -> Iterator[Kernel]:
    """``start_kernel``'s kernel, shut down by itself (which removes its VM's folder)."""
    km, kc = start_kernel(**kwargs)
    try:
        yield km, kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)


@contextlib.contextmanager
def beside_ipykernel() -> Iterator[tuple[Kernel, Kernel]]:
    """Stock ipykernel and the sandbox kernel, each at In[1], for side-by-side tests."""
    ipykernel = start_new_kernel(kernel_name="python3", startup_timeout=60)
    ipykernel[1].execute_interactive("pass", timeout=60)  # as start_kernel does: In[1]
    sandbox = start_kernel()
    try:
        yield ipykernel, sandbox
    finally:
        for (km, kc), now in ((ipykernel, True), (sandbox, False)):
            kc.stop_channels()
            km.shutdown_kernel(now=now)  # the sandbox's own shutdown removes its VM's folder


def run(kc: BlockingKernelClient, code: str, timeout: float = 60,
        **options: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The execute reply and the IOPub messages (less status) that the request caused."""
    msg_id = kc.execute(code, **options)
    reply = kc.get_shell_msg(timeout=timeout)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = kc.get_shell_msg(timeout=timeout)
    return reply, iopub_until_idle(kc, msg_id, timeout)


def iopub_until_idle(kc: BlockingKernelClient, msg_id: str,
                     timeout: float = 60) -> list[dict[str, Any]]:
    msgs = []
    while True:
        msg = kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "status":
            if msg["content"]["execution_state"] == "idle":
                return msgs
            continue
        msgs.append(msg)


def stdout_of(msgs: list[dict[str, Any]]) -> str:
    return "".join(m["content"]["text"] for m in msgs
                   if m["msg_type"] == "stream" and m["content"]["name"] == "stdout")


def without_input(msgs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in msgs if m["msg_type"] != "execute_input"]


def qemu_children(kernel_pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == kernel_pid and b"qemu-system" in cmdline:
            found.append(int(entry.name))
    return found


def kernel_pid(km: KernelManager) -> int:
    pid = km.provisioner.process.pid  # type: ignore[union-attr]
    return int(pid)
