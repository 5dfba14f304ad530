from collections.abc import Iterator
from typing import Any

import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager, start_new_kernel

KERNEL_NAME = "sandbox-python"
BOOT_TIMEOUT = 150


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/kernel" in str(item.path):
            item.add_marker(pytest.mark.vm)
            item.add_marker(pytest.mark.timeout(240))


def start_kernel(**kwargs: Any) -> tuple[KernelManager, BlockingKernelClient]:
    km, kc = start_new_kernel(kernel_name=KERNEL_NAME, startup_timeout=BOOT_TIMEOUT, **kwargs)
    # The first cell waits for the VM; take that wait here, not in a test's budget.
    reply = kc.execute_interactive("pass", timeout=BOOT_TIMEOUT)
    assert reply["content"]["status"] == "ok", reply["content"]
    return km, kc


@pytest.fixture(scope="module")
def kernel() -> Iterator[tuple[KernelManager, BlockingKernelClient]]:
    km, kc = start_kernel()
    yield km, kc
    kc.stop_channels()
    km.shutdown_kernel(now=False)


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
