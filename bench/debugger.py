"""The debugger's costs: starting a debug session (JupyterLab's initialize and attach) in a
kernel that has run a cell, and a trivial cell's round trip while the session is on. With no
session, debugpy is never imported: the start and cell rows are what a kernel pays for it."""

import time
from typing import Any

from jupyter_client.blocking.client import BlockingKernelClient

from bench import kernels as k

_INITIALIZE = {"clientID": "bench", "adapterID": "", "pathFormat": "path",
               "linesStartAt1": True, "columnsStartAt1": True}


def debug_request(kc: BlockingKernelClient, command: str,
                  arguments: dict[str, Any] | None = None) -> dict[str, Any]:
    msg = kc.session.msg("debug_request", {"type": "request", "seq": 1, "command": command,
                                           "arguments": arguments or {}})
    kc.control_channel.send(msg)
    while True:
        reply = kc.get_control_msg(timeout=k.TIMEOUT)
        if reply["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
            assert reply["content"]["success"], reply["content"]
            return dict(reply["content"])


def session_start_s(name: str) -> float:
    with k.kernel(name) as (_, kc):
        k.execute(kc, "pass")
        started = time.perf_counter()
        debug_request(kc, "initialize", _INITIALIZE)
        debug_request(kc, "attach")
        return time.perf_counter() - started


def cells_while_debugging(name: str, count: int) -> list[float]:
    with k.kernel(name) as (_, kc):
        debug_request(kc, "initialize", _INITIALIZE)
        debug_request(kc, "attach")
        debug_request(kc, "configurationDone")
        return k.cell_round_trips(kc, count)
