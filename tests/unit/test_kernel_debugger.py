"""The host's side of the debugger against a scripted, and hostile, guest: what it relays, what it
answers itself, and what it refuses of debugpy's messages (forged, flooding, too large)."""

import asyncio
import logging
from typing import Any

import pytest

from sandbox_kernel.cell_hash import cell_hash
from sandbox_kernel.errors import SandboxError
from sandbox_kernel.kernel import dap
from sandbox_kernel.kernel.debugger import Debugger

PREFIX = "/tmp/ipykernel_42/"
CODE = "x = 1\n"


class FakeGuest:
    """debugpy as the guest runs it; each DAP request is answered by ``respond`` (or not)."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.dumped: list[str] = []
        self.debugger: Debugger | None = None
        self.respond = True
        self.inspected: dict[str, Any] = {"variables": [{"name": "x", "value": "1"},
                                                         {"name": "_i3", "value": "'x'"},
                                                         {"name": "In", "value": "[]"}]}

    async def debug_start(self, answer_s: float) -> tuple[int, str, list[str]]:
        return 5678, PREFIX, ["/opt/sandbox/**"]

    def dap_send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)
        if not self.respond:
            return
        assert self.debugger is not None
        loop = asyncio.get_running_loop()
        if message["command"] == "attach":
            loop.call_soon(self.debugger.from_guest,
                           {"type": "event", "seq": 7, "event": "initialized", "body": {}})
        loop.call_soon(self.debugger.from_guest, {
            "type": "response", "seq": 100, "request_seq": message["seq"], "success": True,
            "command": message["command"], "body": {"echo": message["arguments"]}
            if "arguments" in message else {}})

    async def dump_cell(self, code: str) -> None:
        self.dumped.append(code)

    async def debug_inspect(self, what: str, reference: int = 0, name: str = "",
                            path: str = "") -> dict[str, Any]:
        return self.inspected if what == "variables" else {}

    async def debug_stop(self) -> None:
        pass


def _debugger(published: list[dict[str, Any]], guest: FakeGuest,
              shared: tuple[str, str] | None = None) -> Debugger:
    debugger = Debugger(published.append, logging.getLogger("test"), shared=shared)
    guest.debugger = debugger
    return debugger


async def _started(debugger: Debugger, guest: FakeGuest) -> None:
    async def guest_for() -> FakeGuest:
        return guest

    reply = await debugger.handle(guest_for, {"seq": 1, "command": "initialize",
                                              "arguments": {}})
    assert reply["success"]


def request(command: str, seq: int = 10, **arguments: Any) -> dict[str, Any]:
    return {"type": "request", "seq": seq, "command": command, "arguments": arguments}


async def test_relayed_requests_go_under_the_host_s_seq_and_come_back_under_the_frontend_s(
        ) -> None:
    guest, published = FakeGuest(), []
    debugger = _debugger(published, guest)
    await _started(debugger, guest)
    reply = await debugger.handle(None, request("stackTrace", seq=41, threadId=1))  # type: ignore[arg-type]
    assert reply["request_seq"] == 41 and reply["success"]
    sent = guest.sent[-1]
    assert sent["command"] == "stackTrace" and sent["type"] == "request"
    assert sent["seq"] == guest.sent[-2]["seq"] + 1 != 41  # the host numbers its own


async def test_attach_configures_debugpy_once_it_is_initialized() -> None:
    guest, published = FakeGuest(), []
    debugger = _debugger(published, guest)
    await _started(debugger, guest)
    reply = await debugger.handle(None, request("attach", seq=2))  # type: ignore[arg-type]
    assert reply["success"] and reply["request_seq"] == 2
    attach, done = guest.sent[-2:]
    assert attach["arguments"]["connect"] == {"host": "127.0.0.1", "port": 5678}
    assert attach["arguments"]["rules"] == [{"path": "/opt/sandbox/**", "include": False}]
    assert done["command"] == "configurationDone"
    assert published == [{"seq": 7, "type": "event", "event": "initialized", "body": {}}]


async def test_dump_cell_names_the_file_as_ipykernel_and_serves_its_source() -> None:
    guest, published = FakeGuest(), []
    debugger = _debugger(published, guest)
    await _started(debugger, guest)
    reply = await debugger.handle(None, request("dumpCell", code=CODE))  # type: ignore[arg-type]
    path = reply["body"]["sourcePath"]
    assert path == f"{PREFIX}{cell_hash(CODE)}.py" and guest.dumped == [CODE]
    source = await debugger.handle(None, request("source", source={"path": path}))  # type: ignore[arg-type]
    assert source["body"]["content"] == CODE


async def test_the_variable_explorer_hides_what_ipykernel_hides() -> None:
    guest, published = FakeGuest(), []
    debugger = _debugger(published, guest)
    reply = await debugger.handle(None, request("inspectVariables"))  # type: ignore[arg-type]
    assert debugger._guest is None  # not started: no VM asked
    assert not reply["success"]
    await _started(debugger, guest)
    reply = await debugger.handle(None, request("inspectVariables"))  # type: ignore[arg-type]
    assert [v["name"] for v in reply["body"]["variables"]] == ["x"]


async def test_a_breakpoint_in_a_host_file_of_the_shared_folder_is_set_in_the_vm_s() -> None:
    guest, published = FakeGuest(), []
    debugger = _debugger(published, guest, shared=("/home/me/course", "/home/user/course"))
    await _started(debugger, guest)
    await debugger.handle(None, request(  # type: ignore[arg-type]
        "setBreakpoints", source={"path": "/home/me/course/lib/helper.py"},
        breakpoints=[{"line": 2}]))
    assert guest.sent[-1]["arguments"]["source"]["path"] == "/home/user/course/lib/helper.py"
    await debugger.handle(None, request(  # type: ignore[arg-type]
        "setBreakpoints", source={"path": "/home/me/course-other/x.py"}, breakpoints=[]))
    assert guest.sent[-1]["arguments"]["source"]["path"] == "/home/me/course-other/x.py"


@pytest.mark.parametrize("message", [
    {"type": "response", "seq": 1, "request_seq": 999, "success": True, "command": "x"},
    {"type": "response", "seq": 1, "request_seq": "1", "success": True, "command": "x"},
    {"type": "event", "seq": 1, "event": "execute_reply", "body": {}},
    {"type": "event", "seq": 1, "event": "output", "body": ["not", "an", "object"]},
    {"type": "event", "seq": 1, "event": "output", "body": {"output": "x" * 300_000}},
    {"type": "request", "seq": 1, "command": "runInTerminal", "arguments": {}},
    ["not a message"],
    None,
])
async def test_forged_or_malformed_messages_from_the_guest_are_dropped(message: Any) -> None:
    guest, published = FakeGuest(), []
    debugger = _debugger(published, guest)
    await _started(debugger, guest)
    debugger.from_guest(message)
    assert published == []


async def test_a_flood_of_events_is_cut_to_the_budget() -> None:
    guest, published = FakeGuest(), []
    debugger = _debugger(published, guest)
    await _started(debugger, guest)
    for seq in range(20_000):
        debugger.from_guest({"type": "event", "seq": seq, "event": "output",
                             "body": {"category": "stdout", "output": "x"}})
    assert dap.EVENT_BURST <= len(published) < dap.EVENT_BURST + 200


async def test_events_before_a_session_starts_or_after_it_ends_are_dropped() -> None:
    guest, published = FakeGuest(), []
    debugger = _debugger(published, guest)
    event = {"type": "event", "seq": 1, "event": "stopped", "body": {"threadId": 1}}
    debugger.from_guest(event)
    await _started(debugger, guest)
    await debugger.handle(None, request("disconnect"))  # type: ignore[arg-type]
    debugger.from_guest(event)
    assert published == [] and debugger.stopped_threads == set()


async def test_a_guest_that_never_answers_gets_a_failure_reply_in_time(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from sandbox_kernel.kernel import debugger as module

    monkeypatch.setattr(module, "ANSWER_S", 0.05)
    guest, published = FakeGuest(), []
    debugger = _debugger(published, guest)
    await _started(debugger, guest)
    guest.respond = False
    reply = await debugger.handle(None, request("stackTrace", seq=5, threadId=1))  # type: ignore[arg-type]
    assert reply["success"] is False and reply["request_seq"] == 5


async def test_a_rich_display_read_from_a_stopped_frame_is_parsed_never_evaluated() -> None:
    guest, published = FakeGuest(), []
    debugger = _debugger(published, guest)
    await _started(debugger, guest)
    debugger.stopped_threads.add(1)
    results = iter(["({'text/plain': '2', 'bad key': 'x'}, {'text/plain': {}})",
                    "__import__('os').system('echo pwned')"])

    def evaluate(message: dict[str, Any]) -> None:
        debugger.from_guest({"type": "response", "seq": 1, "request_seq": message["seq"],
                             "success": True, "command": "evaluate",
                             "body": {"result": next(results)}})
    guest.dap_send = lambda m: asyncio.get_running_loop().call_soon(evaluate, m)  # type: ignore[method-assign]
    first = await debugger.handle(None, request(  # type: ignore[arg-type]
        "richInspectVariables", variableName="a", frameId=3))
    assert first["body"] == {"data": {"text/plain": "2"}, "metadata": {"text/plain": {}}}
    second = await debugger.handle(None, request(  # type: ignore[arg-type]
        "richInspectVariables", variableName="a", frameId=3))
    assert second["body"] == {"data": {}, "metadata": {}}


@pytest.mark.parametrize("content", [None, [], {"command": 3}, {"command": "x", "seq": "1"},
                                     {"command": "x", "arguments": []}])
async def test_a_debug_request_it_cannot_read_gets_a_failure_response(content: Any) -> None:
    debugger = _debugger([], FakeGuest())
    reply = await debugger.handle(None, content)  # type: ignore[arg-type]
    assert reply["type"] == "response" and reply["success"] is False


async def test_a_vm_that_cannot_start_the_debugger_fails_initialize() -> None:
    async def no_vm() -> Any:
        raise SandboxError("the VM is not running")

    reply = await _debugger([], FakeGuest()).handle(no_vm, request("initialize"))
    assert reply["success"] is False and "not running" in reply["message"]


async def test_stopped_events_in_bulk_ask_the_guest_for_its_threads_once_at_a_time() -> None:
    guest, published = FakeGuest(), []
    debugger = _debugger(published, guest)
    await _started(debugger, guest)
    guest.respond = False
    for seq in range(500):
        debugger.from_guest({"type": "event", "seq": seq, "event": "stopped",
                             "body": {"reason": "breakpoint", "threadId": 1,
                                      "allThreadsStopped": True}})
    await asyncio.sleep(0)
    assert [m["command"] for m in guest.sent].count("threads") == 1
    debugger.close()
