"""JupyterLab's debugger on the VM's code: ``debug_request``s on the control channel become DAP
messages for debugpy in the guest, and debugpy's events become ``debug_event``s on IOPub.

The host answers what ipykernel answers itself (debugInfo, dumpCell, configurationDone,
inspectVariables, richInspectVariables, copyToGlobals, modules, and sources of cells) and
relays the rest. It numbers what it sends to debugpy itself, and so takes only responses to
its own requests, each within a deadline: the guest is untrusted (kernel/dap.py).
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import itertools
import logging
import re
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, ClassVar, Protocol

from sandbox_kernel.cell_hash import CELL_FOLDER, SEED, cell_hash
from sandbox_kernel.errors import SandboxError
from sandbox_kernel.kernel import dap

JSONDict = dict[str, Any]
ANSWER_S = 30.0  # for debugpy in the VM under TCG; a stuck guest gets a failure after it
START_S = 180.0  # debugpy's first import and its adapter's start, after any running cell
_KEPT_CELLS = 512
_KEPT_CELL_BYTES = 64 * 2**20
# Threads of the guest's worker that are not the user's, as ipykernel hides its own.
_OWN_THREADS = frozenset({"output-flusher", "preload", "IPythonHistorySavingThread"})
# What the variable explorer leaves out of the namespace, as ipykernel does.
_HIDDEN = frozenset({
    "__name__", "__doc__", "__package__", "__loader__", "__spec__", "__annotations__",
    "__builtins__", "__builtin__", "__display__", "get_ipython", "debugpy", "exit", "quit",
    "In", "Out", "_oh", "_dh", "_", "__", "___"})
_MIME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9!#$&^_.+-]{0,126}/[a-zA-Z0-9][a-zA-Z0-9!#$&^_.+-]{0,126}")


class DebugGuest(Protocol):
    """What the debugger needs of the VM (kernel/bridge.py); each may raise SandboxError."""

    async def debug_start(self, answer_s: float) -> tuple[int, str, list[str]]: ...

    def dap_send(self, message: JSONDict) -> None: ...

    async def dump_cell(self, code: str) -> None: ...

    async def debug_inspect(self, what: str, reference: int = 0, name: str = "",
                            path: str = "") -> JSONDict: ...

    async def debug_stop(self) -> None: ...


def visible(name: Any) -> bool:
    return (isinstance(name, str) and name not in _HIDDEN
            and not re.match(r"_\d", name) and not name.startswith("_i"))


class Debugger:
    def __init__(self, publish: Callable[[JSONDict], None], log: logging.Logger,
                 just_my_code: bool = True, shared: tuple[str, str] | None = None) -> None:
        """``shared``: the shared folder's path on the host and in the VM, so that a
        breakpoint set in a host file (as VS Code sets them) lands in the VM's copy."""
        self._shared = shared
        self._publish = publish
        self._log = log
        self._just_my_code = just_my_code
        self._guest: DebugGuest | None = None
        self.started = False
        self._port = 0
        # What the guest says once started; before, the folder it compiles cells in, which
        # JupyterLab's first debugInfo (before initialize) must already give.
        self._tmp_prefix = CELL_FOLDER + "/"
        self._skip_paths: list[str] = []
        self._seq = itertools.count(1)
        self._pending: dict[int, tuple[int, asyncio.Future[JSONDict]]] = {}
        self._initialized: asyncio.Future[int] | None = None
        self._attached = False
        self.breakpoints: dict[str, list[JSONDict]] = {}
        self.stopped_threads: set[int] = set()
        self._cells: OrderedDict[str, str] = OrderedDict()
        self._budget = dap.EventBudget()
        self._tasks: set[asyncio.Task[None]] = set()

    # --- requests from the frontend ------------------------------------------------------------
    async def handle(self, guest_for: Callable[[], Any], request: Any) -> JSONDict:
        """The reply to one ``debug_request``'s content; never raises."""
        if not isinstance(request, dict) or not isinstance(request.get("command"), str) \
                or not isinstance(request.get("seq", 0), int) \
                or not isinstance(request.get("arguments", {}), dict):
            return dap.failure(request if isinstance(request, dict) else {},
                               "a debug request needs a command, a seq and arguments")
        command = request["command"]
        try:
            if command == "initialize" and not self.started:
                self._guest = await guest_for()
                await self._start()
            static = self._STATIC.get(command)
            if static is not None:
                reply: JSONDict = await static(self, request)
                return reply
            if not self.started:
                return dap.failure(request, "the debugger is not started")
            handler = self._STARTED.get(command)
            reply = await (handler(self, request) if handler else self._forward(request))
            if command == "disconnect":
                await self._stop()
            return reply
        except (SandboxError, TimeoutError) as exc:
            why = str(exc) or "the debugger in the VM did not answer in time"
            self._log.warning("debug request %s failed: %s", command, why)
            return dap.failure(request, why)

    async def _start(self) -> None:
        guest = self._require_guest()
        self._port, self._tmp_prefix, self._skip_paths = await guest.debug_start(START_S)
        self.started = True

    async def _stop(self) -> None:
        self.started = False
        self._attached = False
        self.breakpoints.clear()
        self.stopped_threads.clear()
        for _, future in self._pending.values():
            future.cancel()
        self._pending.clear()
        with contextlib.suppress(SandboxError, TimeoutError):
            await asyncio.wait_for(self._require_guest().debug_stop(), ANSWER_S)

    def _require_guest(self) -> DebugGuest:
        if self._guest is None:
            raise SandboxError("the debugger has no VM")
        return self._guest

    async def _forward(self, request: JSONDict) -> JSONDict:
        """Sends ``request`` to debugpy under a seq of the host's; its response, under the
        frontend's."""
        return await asyncio.wait_for(self._send(request), ANSWER_S)

    def _send(self, request: JSONDict) -> asyncio.Future[JSONDict]:
        seq = next(self._seq)
        future: asyncio.Future[JSONDict] = asyncio.get_running_loop().create_future()
        self._pending[seq] = (int(request.get("seq", 0)), future)
        future.add_done_callback(lambda _: self._pending.pop(seq, None))
        self._require_guest().dap_send({**request, "seq": seq, "type": "request"})
        return future

    # --- what the host answers itself ----------------------------------------------------------
    async def _debug_info(self, request: JSONDict) -> JSONDict:
        return dap.success(request, {
            "isStarted": self.started, "hashMethod": "Murmur2", "hashSeed": SEED,
            "tmpFilePrefix": self._tmp_prefix, "tmpFileSuffix": ".py",
            "breakpoints": [{"source": source, "breakpoints": lines}
                            for source, lines in self.breakpoints.items()],
            "stoppedThreads": sorted(self.stopped_threads), "richRendering": True,
            "exceptionPaths": ["Python Exceptions"], "copyToGlobals": True})

    async def _dump_cell(self, request: JSONDict) -> JSONDict:
        code = request["arguments"].get("code")
        if not isinstance(code, str):
            return dap.failure(request, "dumpCell needs the cell's code")
        await asyncio.wait_for(self._require_guest().dump_cell(code), ANSWER_S)
        path = f"{self._tmp_prefix}{cell_hash(code)}.py"
        self._cells[path] = code
        self._cells.move_to_end(path)
        while len(self._cells) > _KEPT_CELLS or (
                len(self._cells) > 1 and sum(map(len, self._cells.values())) > _KEPT_CELL_BYTES):
            self._cells.popitem(last=False)
        return dap.success(request, {"sourcePath": path})

    def _in_vm(self, request: JSONDict) -> JSONDict:
        """``request`` with a source path in the host's shared folder made the VM's."""
        source = request["arguments"].get("source")
        path = source.get("path") if isinstance(source, dict) else None
        if self._shared is None or not isinstance(path, str):
            return request
        host, guest = self._shared
        if not path.startswith(host.rstrip("/") + "/"):
            return request
        source = {**source, "path": guest + path[len(host.rstrip("/")):]}
        return {**request, "arguments": {**request["arguments"], "source": source}}

    async def _source(self, request: JSONDict) -> JSONDict:
        request = self._in_vm(request)
        path = (request["arguments"].get("source") or {}).get("path")
        if isinstance(path, str) and path in self._cells:
            return dap.success(request, {"content": self._cells[path]})
        if not isinstance(path, str) or not path or len(path) > 4096:
            return dap.failure(request, "source unavailable")
        found = await self._inspect("source", path=path)
        if not isinstance(found.get("content"), str):
            return dap.failure(request, "source unavailable")
        return dap.success(request, {"content": found["content"]})

    async def _configuration_done(self, request: JSONDict) -> JSONDict:
        return dap.success(request)  # sent to debugpy already, during attach

    async def _attach(self, request: JSONDict) -> JSONDict:
        arguments = dict(request["arguments"])
        arguments["connect"] = {"host": "127.0.0.1", "port": self._port}
        if not self._just_my_code:
            arguments["debugOptions"] = ["DebugStdLib"]
        arguments["rules"] = [{"path": path, "include": False} for path in self._skip_paths]
        loop = asyncio.get_running_loop()
        self._initialized = loop.create_future()
        attached = self._send({**request, "arguments": arguments})
        if not self._attached:
            # debugpy answers an attach once it is configured: ipykernel's configurationDone.
            seq = await asyncio.wait_for(self._initialized, ANSWER_S)
            await self._forward({"seq": seq + 1, "command": "configurationDone"})
            self._attached = True
        return await asyncio.wait_for(attached, ANSWER_S)

    async def _set_breakpoints(self, request: JSONDict) -> JSONDict:
        request = self._in_vm(request)
        source = (request["arguments"].get("source") or {}).get("path")
        reply = await self._forward(request)
        if isinstance(source, str) and reply["success"]:
            self.breakpoints[source] = [
                {"line": point["line"]} for point in reply["body"].get("breakpoints", [])
                if isinstance(point, dict) and isinstance(point.get("line"), int)]
        return reply

    async def _variables(self, request: JSONDict) -> JSONDict:
        if self.stopped_threads:
            reply = await self._forward(request)
            found = reply["body"].get("variables", [])
        else:
            reference = request["arguments"].get("variablesReference", 0)
            found = (await self._inspect("variables", reference if isinstance(
                reference, int) and reference >= 0 else 0)).get("variables", [])
            reply = dap.success(request)
        return {**reply, "body": {"variables": _variables(found)}}

    async def _inspect_variables(self, request: JSONDict) -> JSONDict:
        found = (await self._inspect("variables")).get("variables", [])
        return dap.success(request, {"variables": _variables(found)})

    async def _rich_inspect_variables(self, request: JSONDict) -> JSONDict:
        name = request["arguments"].get("variableName")
        if not isinstance(name, str) or not name.isidentifier():
            reply = dap.success(request, {"data": {}, "metadata": {}})
            if name not in ("special variables", "function variables"):
                reply["success"] = False
            return reply
        if not self.stopped_threads or not self.started:
            bundle = await self._inspect("rich", name=name)
        else:
            reply = await self._forward({
                "seq": request.get("seq", 0), "command": "evaluate",
                "arguments": {"expression": f"get_ipython().display_formatter.format({name})",
                              "frameId": request["arguments"].get("frameId"),
                              "context": "clipboard"}})
            bundle = _formatted(reply["body"].get("result")) if reply["success"] else {}
        data = {k: v for k, v in (bundle.get("data") or {}).items() if _MIME.fullmatch(k)}
        metadata = bundle.get("metadata") or {}
        return dap.success(request, {"data": data, "metadata": {
            k: v for k, v in metadata.items() if k in data} if isinstance(metadata, dict)
            else {}})

    async def _copy_to_globals(self, request: JSONDict) -> JSONDict:
        arguments = request["arguments"]
        target = arguments.get("dstVariableName")
        if not isinstance(target, str) or not target.isidentifier():
            return dap.failure(request, "copyToGlobals needs a variable name")
        return await self._forward({
            "seq": request.get("seq", 0), "command": "setExpression",
            "arguments": {"expression": f"globals()['{target}']",
                          "value": str(arguments.get("srcVariableName", "")),
                          "frameId": arguments.get("srcFrameId")}})

    async def _modules(self, request: JSONDict) -> JSONDict:
        found = (await self._inspect("modules")).get("modules", [])
        modules = [m for m in found if isinstance(m, dict)]
        arguments = request["arguments"]
        start = arguments.get("startModule", 0)
        count = arguments.get("moduleCount", len(modules))
        start = start if isinstance(start, int) and start >= 0 else 0
        count = count if isinstance(count, int) and count >= 0 else len(modules)
        return dap.success(request, {"modules": modules[start:start + count],
                                     "totalModules": len(modules)})

    async def _inspect(self, what: str, reference: int = 0, name: str = "",
                       path: str = "") -> JSONDict:
        return await asyncio.wait_for(
            self._require_guest().debug_inspect(what, reference, name, path), ANSWER_S)

    _STATIC: ClassVar[dict[str, Any]] = {
        "debugInfo": _debug_info, "inspectVariables": _inspect_variables,
        "richInspectVariables": _rich_inspect_variables, "modules": _modules,
        "copyToGlobals": _copy_to_globals}
    _STARTED: ClassVar[dict[str, Any]] = {
        "dumpCell": _dump_cell, "setBreakpoints": _set_breakpoints, "source": _source,
        "variables": _variables, "attach": _attach, "configurationDone": _configuration_done}

    # --- messages from the guest ---------------------------------------------------------------
    def from_guest(self, message: Any) -> None:
        """A DAP message from debugpy in the guest: a response to one of the host's requests,
        or an event for the frontend. Anything else is dropped."""
        if not self.started:
            return
        kind = message.get("type") if isinstance(message, dict) else None
        try:
            if kind == "response":
                self._take_response(dap.response(message))
            elif self._budget.take():
                self._take_event(dap.event(message))
        except dap.BadMessage as exc:
            self._log.debug("dropping a DAP message from the guest: %s", exc)

    def _take_response(self, response: JSONDict) -> None:
        pending = self._pending.get(response["request_seq"])
        if pending is None:
            return
        their_seq, future = pending
        if not future.done():
            future.set_result({**response, "request_seq": their_seq})

    def _take_event(self, event: JSONDict) -> None:
        body = event["body"]
        match event["event"]:
            case "initialized":
                if self._initialized is not None and not self._initialized.done():
                    self._initialized.set_result(event["seq"])
            case "stopped" if body.get("allThreadsStopped") and not self._tasks:
                # Which threads stopped is the threads request's to say; the frontend reads
                # them from debugInfo. One such request at a time: a guest that sends stopped
                # events in bulk does not get the host to ask in bulk.
                self._own(self._all_stopped(event))
                return
            case "stopped":
                if isinstance(body.get("threadId"), int):
                    self.stopped_threads.add(body["threadId"])
            case "continued":
                if body.get("allThreadsContinued"):
                    self.stopped_threads.clear()
                else:
                    self.stopped_threads.discard(body.get("threadId"))
        self._publish(event)

    async def _all_stopped(self, event: JSONDict) -> None:
        with contextlib.suppress(SandboxError, TimeoutError, asyncio.CancelledError):
            reply = await self._forward({"seq": event["seq"] + 1, "command": "threads"})
            for thread in reply["body"].get("threads", []):
                if isinstance(thread, dict) and isinstance(thread.get("id"), int) \
                        and thread.get("name") not in _OWN_THREADS:
                    self.stopped_threads.add(thread["id"])
        self._publish(event)

    def _own(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for _, future in self._pending.values():
            future.cancel()


def _variables(found: Any) -> list[JSONDict]:
    return [v for v in found if isinstance(v, dict) and visible(v.get("name"))] \
        if isinstance(found, list) else []


def _formatted(result: Any) -> JSONDict:
    """debugpy's text of ``display_formatter.format(x)``: a literal pair (data, metadata),
    read as a literal only, never evaluated."""
    if not isinstance(result, str) or len(result) > dap.MAX_RESPONSE_BYTES:
        return {}
    try:
        data, metadata = ast.literal_eval(result)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {"data": {k: v for k, v in data.items() if isinstance(k, str)},
            "metadata": metadata if isinstance(metadata, dict) else {}}
