"""The debugger: the DAP sequence JupyterLab sends, on stock ipykernel and on the sandbox kernel
side by side, and what a user does while a cell is stopped (interrupt, restart, exceptions,
breakpoints in a file beside the notebook)."""

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager

from tests.kernel.kernels import BOOT_TIMEOUT, beside_ipykernel, run, running_kernel, stdout_of

pytestmark = [pytest.mark.vm, pytest.mark.timeout(600)]

ANSWER_S = 120  # debugpy's first start in the VM under TCG takes seconds
INITIALIZE = {"clientID": "test-client", "clientName": "testClient", "adapterID": "",
              "pathFormat": "path", "linesStartAt1": True, "columnsStartAt1": True,
              "supportsVariableType": True, "supportsVariablePaging": True,
              "supportsRunInTerminalRequest": True, "locale": "en"}
CELL = "def f(a, b):\n    c = a + b\n    return c\n\nf(2, 3)"


class Dap:
    """A frontend's side of the debugger: debug requests on control, debug events on IOPub."""

    def __init__(self, kc: BlockingKernelClient) -> None:
        self.kc = kc
        self.seq = 0
        self.events: list[dict[str, Any]] = []

    def __call__(self, command: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
        self.seq += 1
        msg = self.kc.session.msg("debug_request", {
            "type": "request", "seq": self.seq, "command": command,
            "arguments": arguments or {}})
        self.kc.control_channel.send(msg)
        deadline = time.monotonic() + ANSWER_S
        while True:
            reply = self.kc.get_control_msg(timeout=max(0.1, deadline - time.monotonic()))
            if reply["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
                assert reply["msg_type"] == "debug_reply"
                return dict(reply["content"])

    def wait_for(self, event: str) -> dict[str, Any]:
        deadline = time.monotonic() + ANSWER_S
        while True:
            msg = self.kc.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
            if msg["msg_type"] == "debug_event":
                self.events.append(msg["content"])
                if msg["content"]["event"] == event:
                    return dict(msg["content"])

    def start(self) -> None:
        assert self("initialize", INITIALIZE)["success"]
        assert self("attach")["success"]

    def stop_at(self, code: str, line: int) -> tuple[str, int]:
        """Dumps ``code``, sets a breakpoint on ``line``, runs it; the stopped thread."""
        path = self("dumpCell", {"code": code})["body"]["sourcePath"]
        assert self("setBreakpoints", {"breakpoints": [{"line": line}],
                                       "source": {"path": path},
                                       "sourceModified": False})["success"]
        assert self("configurationDone")["success"]
        msg_id = self.kc.execute(code)
        stopped = self.wait_for("stopped")
        assert stopped["body"]["reason"] == "breakpoint"
        return msg_id, stopped["body"]["threadId"]


def _execute_reply(kc: BlockingKernelClient, msg_id: str) -> dict[str, Any]:
    while True:
        reply = kc.get_shell_msg(timeout=ANSWER_S)
        if reply["parent_header"].get("msg_id") == msg_id:
            return dict(reply["content"])


def _sequence(kc: BlockingKernelClient) -> dict[str, Any]:
    """JupyterLab's sequence, step by step; what each reply says that should match."""
    dap = Dap(kc)
    seen: dict[str, Any] = {}
    initialize = dap("initialize", INITIALIZE)
    seen["initialize"] = (initialize["success"], sorted(initialize["body"]))
    seen["attach"] = dap("attach")["success"]
    info = dap("debugInfo")["body"]
    seen["debugInfo"] = {k: v for k, v in info.items() if k != "tmpFilePrefix"}
    path = dap("dumpCell", {"code": CELL})["body"]["sourcePath"]
    seen["dumpCell"] = os.path.basename(path), path.startswith(info["tmpFilePrefix"])
    points = dap("setBreakpoints", {"breakpoints": [{"line": 2}], "source": {"path": path},
                                    "sourceModified": False})
    seen["setBreakpoints"] = [(p["verified"], p["line"]) for p in points["body"]["breakpoints"]]
    seen["configurationDone"] = dap("configurationDone")["success"]
    seen["debugInfo breakpoints"] = dap("debugInfo")["body"]["breakpoints"] == [
        {"source": path, "breakpoints": [{"line": 2}]}]
    msg_id = kc.execute(CELL)
    stopped = dap.wait_for("stopped")["body"]
    seen["stopped"] = stopped["reason"], stopped["allThreadsStopped"]
    thread = stopped["threadId"]
    frames = dap("stackTrace", {"threadId": thread})["body"]["stackFrames"]
    seen["stackTrace"] = [(f["name"], f["line"], f["source"]["path"] == path) for f in frames]
    scopes = dap("scopes", {"frameId": frames[0]["id"]})["body"]["scopes"]
    seen["scopes"] = [s["name"] for s in scopes]
    variables = dap("variables", {"variablesReference": scopes[0]["variablesReference"]})
    seen["variables"] = [(v["name"], v["value"], v["type"])
                         for v in variables["body"]["variables"]]
    # The stopped thread is listed (ipykernel lists some threads of its own beside it).
    seen["stopped debugInfo"] = thread in dap("debugInfo")["body"]["stoppedThreads"]
    rich = dap("richInspectVariables", {"variableName": "a", "frameId": frames[0]["id"]})
    seen["richInspectVariables stopped"] = rich["success"], rich["body"]["data"]
    seen["next"] = dap("next", {"threadId": thread})["success"]
    step = dap.wait_for("stopped")["body"]
    frames = dap("stackTrace", {"threadId": thread})["body"]["stackFrames"]
    seen["stepped"] = step["reason"], frames[0]["line"]
    seen["continue"] = dap("continue", {"threadId": thread})["success"]
    seen["reply"] = _execute_reply(kc, msg_id)["status"]
    explored = dap("inspectVariables")
    seen["inspectVariables"] = explored["success"], sorted(
        v["name"] for v in explored["body"]["variables"])
    seen["disconnect"] = dap("disconnect", {"restart": False, "terminateDebuggee": True})[
        "success"]
    reply, msgs = run(kc, "print(f(4, 5))")
    seen["after"] = reply["content"]["status"], [m["content"].get("text") for m in msgs
                                                 if m["msg_type"] == "stream"]
    return seen


def test_the_debug_sequence_jupyterlab_sends_gets_ipykernel_s_answers() -> None:
    with beside_ipykernel() as ((_, local), (_, sandbox)):
        expected = _sequence(local)
        got = _sequence(sandbox)
    assert got == expected
    # And what that sequence means, in case both went wrong the same way.
    assert got["stopped"] == ("breakpoint", True)
    assert got["stackTrace"][0] == ("f", 2, True)
    assert ("a", "2", "int") in got["variables"] and ("b", "3", "int") in got["variables"]
    assert got["stepped"] == ("step", 3)
    assert got["reply"] == "ok" and got["after"] == ("ok", ["9\n"])


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[tuple[KernelManager, BlockingKernelClient, Path]]:
    """A sandbox kernel started in a folder of its own, shared with the VM."""
    with running_kernel(cwd=str(tmp_path)) as (km, kc):
        yield km, kc, tmp_path


def _stop_on_exception(kc: BlockingKernelClient) -> tuple[Any, ...]:
    dap = Dap(kc)
    dap.start()
    # JupyterLab offers debugpy's filters; an error a cell does not catch is "userUnhandled"
    # (IPython catches it, so to debugpy it is not "uncaught").
    assert dap("setExceptionBreakpoints", {"filters": ["userUnhandled"]})["success"]
    assert dap("configurationDone")["success"]
    code = "def g():\n    return 1 / 0\n\ng()"
    dap("dumpCell", {"code": code})
    msg_id = kc.execute(code)
    stopped = dap.wait_for("stopped")["body"]
    info = dap("exceptionInfo", {"threadId": stopped["threadId"]})["body"]
    dap("continue", {"threadId": stopped["threadId"]})
    return (stopped["reason"], stopped["description"], info["exceptionId"].split()[0],
            _execute_reply(kc, msg_id)["ename"])


def test_an_error_the_cell_does_not_catch_stops_it_as_in_ipykernel() -> None:
    with beside_ipykernel() as ((_, local), (_, sandbox)):
        expected = _stop_on_exception(local)
        got = _stop_on_exception(sandbox)
    assert got == expected == ("exception", "division by zero", "ZeroDivisionError",
                               "ZeroDivisionError")


def test_a_breakpoint_in_a_file_beside_the_notebook_stops_a_cell_that_calls_it(
        sandbox: Any) -> None:
    _, kc, folder = sandbox
    (folder / "helper.py").write_text("def twice(x):\n    y = 2 * x\n    return y\n")
    guest_folder = stdout_of(run(kc, "import os; print(os.getcwd())")[1]).strip()
    dap = Dap(kc)
    dap.start()
    helper = f"{guest_folder}/helper.py"
    # Set in the host's file, as VS Code sets it: the kernel maps it to the VM's.
    points = dap("setBreakpoints", {"breakpoints": [{"line": 2}],
                                    "source": {"path": str(folder / "helper.py")},
                                    "sourceModified": False})
    assert [p["verified"] for p in points["body"]["breakpoints"]] == [True]
    dap("configurationDone")
    msg_id = kc.execute("import helper\nhelper.twice(21)")
    stopped = dap.wait_for("stopped")["body"]
    frames = dap("stackTrace", {"threadId": stopped["threadId"]})["body"]["stackFrames"]
    assert (frames[0]["name"], frames[0]["line"], frames[0]["source"]["path"]) == (
        "twice", 2, helper)
    source = dap("source", {"source": {"path": helper}})
    assert "y = 2 * x" in source["body"]["content"]
    dap("stepOut", {"threadId": stopped["threadId"]})
    assert dap.wait_for("stopped")["body"]["reason"] == "step"
    dap("continue", {"threadId": stopped["threadId"]})
    assert _execute_reply(kc, msg_id)["status"] == "ok"


def test_an_interrupt_while_stopped_ends_the_cell_and_the_kernel_goes_on(sandbox: Any) -> None:
    km, kc, _ = sandbox
    dap = Dap(kc)
    dap.start()
    msg_id, _ = dap.stop_at("x = 1\ny = 2\nz = 3", 2)
    km.interrupt_kernel()
    reply = _execute_reply(kc, msg_id)
    assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt"
    assert dap("disconnect", {"restart": False, "terminateDebuggee": True})["success"]
    reply, msgs = run(kc, "print(x)")
    assert reply["content"]["status"] == "ok"
    assert [m["content"]["text"] for m in msgs if m["msg_type"] == "stream"] == ["1\n"]


def test_a_restart_while_stopped_gives_a_fresh_kernel(sandbox: Any) -> None:
    km, kc, _ = sandbox
    dap = Dap(kc)
    dap.start()
    dap.stop_at("x = 1\ny = 2", 2)
    km.restart_kernel(now=False)
    kc.wait_for_ready(timeout=BOOT_TIMEOUT)
    reply, msgs = run(kc, "print('x' in dir())", timeout=BOOT_TIMEOUT)
    assert reply["content"]["status"] == "ok"
    assert [m["content"]["text"] for m in msgs if m["msg_type"] == "stream"] == ["False\n"]
    dap = Dap(kc)  # and the fresh kernel debugs too
    dap.start()
    msg_id, thread = dap.stop_at("v = 7\nw = v", 2)
    dap("continue", {"threadId": thread})
    assert _execute_reply(kc, msg_id)["status"] == "ok"


def test_a_kernel_without_a_debug_session_never_imports_debugpy(sandbox: Any) -> None:
    _, kc, _ = sandbox
    _, msgs = run(kc, "import sys\nprint('debugpy' in sys.modules, "
                      "open('/sys/class/net/lo/operstate').read().strip())")
    assert stdout_of(msgs) == "False down\n"  # nor is the loopback up


# The worker's message pipe, as a cell can find it (tests/kernel/test_hostile_guest.py): DAP
# messages forged in bulk, debugpy's events among them, a response to nothing, a bad event.
_FLOOD = ("import json, time\nch = get_ipython().displayhook.channel\n"
          "def line(message):\n"
          "    return json.dumps({'id': 0, 'type': 'dap_message', 'message': message}).encode()"
          " + b'\\n'\n"
          "forged = [line({'type': 'event', 'seq': 1, 'event': 'output', "
          "'body': {'category': 'stdout', 'output': 'FORGED'}})] * 20000\n"
          "forged += [line({'type': 'event', 'seq': 2, 'event': 'execute_reply', 'body': {}}),\n"
          "           line({'type': 'response', 'seq': 3, 'request_seq': 77777, "
          "'success': True, 'command': 'evaluate', 'body': {'result': 'FORGED'}})]\n"
          "started = time.monotonic()\n"
          "for one in forged:\n"
          "    ch.write_line(one)\n"
          "print(round(time.monotonic() - started, 1))\n")


def test_dap_messages_a_cell_forges_are_bounded_and_checked(sandbox: Any) -> None:
    _, kc, _ = sandbox
    dap = Dap(kc)
    dap.start()
    sent = time.monotonic()
    msg_id = kc.execute(_FLOOD)
    msgs = []  # all of IOPub: the debug events' parent is not the cell
    while not (msgs and msgs[-1]["parent_header"].get("msg_id") == msg_id
               and msgs[-1]["msg_type"] == "status"
               and msgs[-1]["content"]["execution_state"] == "idle"):
        msgs.append(kc.get_iopub_msg(timeout=ANSWER_S))
    assert _execute_reply(kc, msg_id)["status"] == "ok"
    seconds = float(stdout_of([m for m in msgs if m["parent_header"].get("msg_id") == msg_id]))
    started = time.monotonic()
    assert dap("debugInfo")["success"]  # the debugger answers at once, flood or not
    assert time.monotonic() - started < 5
    msgs += _drain(kc)
    flooded_for = time.monotonic() - sent  # the host reads what the cell wrote until now
    events = [m["content"] for m in msgs if m["msg_type"] == "debug_event"]
    forged = [e for e in events if e["event"] == "output" and e["body"].get("output") == "FORGED"]
    # The budget: 1000 at once, 200 a second after that (kernel/dap.py), of 20 000 sent.
    assert 0 < len(forged) <= 1000 + 200 * flooded_for < 20000, (len(forged), seconds)
    assert not [e for e in events if e["event"] == "execute_reply"]


def _drain(kc: BlockingKernelClient) -> list[dict[str, Any]]:
    msgs = []
    while True:
        try:
            msgs.append(kc.get_iopub_msg(timeout=2))
        except Exception:  # queue.Empty: nothing more for 2 s
            return msgs


def test_step_in_enters_the_called_function_and_step_out_leaves_it(sandbox: Any) -> None:
    _, kc, _ = sandbox
    dap = Dap(kc)
    dap.start()
    msg_id, thread = dap.stop_at("def g(x):\n    y = x + 1\n    return y\n\nz = g(1)\nw = z", 5)
    assert dap("stepIn", {"threadId": thread})["success"]
    assert dap.wait_for("stopped")["body"]["reason"] == "step"
    frames = dap("stackTrace", {"threadId": thread})["body"]["stackFrames"]
    assert (frames[0]["name"], frames[0]["line"]) == ("g", 2)
    assert dap("stepOut", {"threadId": thread})["success"]
    dap.wait_for("stopped")
    frames = dap("stackTrace", {"threadId": thread})["body"]["stackFrames"]
    assert frames[0]["name"] == "<module>" and frames[0]["line"] in (5, 6)
    dap("continue", {"threadId": thread})
    assert _execute_reply(kc, msg_id)["status"] == "ok"


def test_a_second_session_after_a_disconnect_stops_at_breakpoints_too(sandbox: Any) -> None:
    # JupyterLab's bug switch turned off, then on again: Lab's disconnect keeps the debuggee
    # (with terminateDebuggee, debugpy ends its session for good, in ipykernel too).
    _, kc, _ = sandbox
    dap = Dap(kc)
    dap.start()
    assert dap("disconnect", {"restart": False, "terminateDebuggee": False})["success"]
    assert run(kc, "print('between')")[0]["content"]["status"] == "ok"
    dap.start()
    msg_id, thread = dap.stop_at("u = 1\nv = u + 1", 2)
    dap("continue", {"threadId": thread})
    assert _execute_reply(kc, msg_id)["status"] == "ok"
    assert dap("disconnect", {"restart": False, "terminateDebuggee": False})["success"]
