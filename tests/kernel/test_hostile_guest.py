"""A guest that sends what it should not: what the cell's own code can forge, since the
worker runs it. Nothing of it may reach the frontend but through the host's own messages."""

import time
from typing import Any

import pytest

from tests.kernel.kernels import Kernel, run

pytestmark = [pytest.mark.vm, pytest.mark.timeout(240)]

# The worker's message pipe, as the cell's code can find it; the agent passes output lines
# on without reading them, so a malformed one reaches the host, which refuses it and logs.
_FORGE = ("import threading\nch = get_ipython().displayhook.channel\n"
          "line = b'{\"id\":' + str(ch.current_id).encode() + "
          "b',\"type\":\"output\",\"name\":\"bogus\",\"text\":\"FORGED BY THE GUEST\"}\\n'\n"
          "ch.write_line(line)\n"
          "for delay in (0.3, 0.6, 0.9, 1.2):  # and outside any cell\n"
          "    threading.Timer(delay, ch.write_line, (line,)).start()\n")


def _iopub_for(kc: Any, seconds: float) -> list[dict[str, Any]]:
    msgs, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            msgs.append(kc.get_iopub_msg(timeout=0.2))
        except Exception:  # queue.Empty
            continue
    return msgs


def test_host_warnings_about_bad_guest_lines_never_reach_the_frontend(kernel: Kernel) -> None:
    _, kc = kernel
    reply, msgs = run(kc, _FORGE)
    assert reply["content"]["status"] == "ok", reply["content"]
    later = _iopub_for(kc, 3.0)
    shown = [m for m in msgs + later if m["msg_type"] != "execute_input"  # the cell's source
             and "FORGED BY THE GUEST" in str(m["content"])]
    assert shown == [], shown


def test_a_cell_over_the_line_limit_is_answered_and_the_kernel_goes_on(kernel: Kernel) -> None:
    _, kc = kernel
    reply, _ = run(kc, "x = 1\n" + "#" * (17 * 2**20), timeout=30)
    assert reply["content"]["ename"] == "RequestTooLarge", reply["content"]
    _, msgs = run(kc, "print('next')")
    assert [m["content"]["text"] for m in msgs if m["msg_type"] == "stream"] == ["next\n"]
