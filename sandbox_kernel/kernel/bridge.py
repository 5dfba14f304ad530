"""The guest side of the kernel: Jupyter requests become protocol requests on the VM's channel,
and the guest's events become IOPub messages, stdin input requests and reply contents.

It knows nothing of ipykernel: it is given the channel and two callables, one that publishes
on IOPub and one that asks the frontend for input. kernel.py imports it in a thread, since
pydantic and the protocol's models are slow to import (see ``_load_vm_side``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from pydantic import ValidationError

from sandbox_kernel import protocol as p
from sandbox_kernel.channel import DualPortChannel, RequestTooLarge
from sandbox_kernel.errors import SandboxError, VMDied, VMUnresponsive
from sandbox_kernel.kernel import published
from sandbox_kernel.kernel.cell_limits import CellLimits, CellTimer, OutputBudget

JSONDict = dict[str, Any]
E = TypeVar("E", bound=p.Message)
_LATE_CELLS = 8  # cells whose threads' output still finds its cell
# What the agent (PID 1, not the worker) answers at once, given this long under a loaded
# host: an interrupt's ack, and an ended worker's reply to its cell. Past it the guest is
# taken for dead: the host waits on nothing for ever.
AGENT_ANSWER_S = 20.0
# What the worker answers between cells (a completion, the history): past this long the
# request gets the reply it gets without a VM, and the kernel takes the next one.
INTROSPECTION_S = 60.0
_COMM_REQUESTS: dict[str, type[p.CommOpen | p.CommMsg | p.CommClose]] = {
    "comm_open": p.CommOpen, "comm_msg": p.CommMsg, "comm_close": p.CommClose}


class Publish(Protocol):
    """Sends one IOPub message whose parent is ``parent``, signed with the kernel's key."""

    def __call__(self, msg_type: str, content: JSONDict, parent: JSONDict, *,
                 metadata: JSONDict | None = None, buffers: list[bytes] | None = None
                 ) -> None: ...


# Asks the frontend on stdin (prompt, password, parent, ident, cancel) and blocks until it
# answers, or returns None once ``cancel`` is set; it runs in a worker thread.
AskInput = Callable[[str, bool, JSONDict, Any, threading.Event], str | None]


@dataclass(frozen=True)
class _Cell:
    """An execute request, for as long as its threads' output may still come: the request
    it goes under, and the output cap it counts against."""

    parent: JSONDict
    budget: OutputBudget


def build_models() -> None:
    """Builds the protocol's validators now, in the loader's thread, rather than model by
    model on the event loop during the first cell."""
    p.build_all()


class Bridge:
    def __init__(self, channel: DualPortChannel, publish: Publish, ask_input: AskInput,
                 log: logging.Logger | None = None, limits: CellLimits | None = None,
                 on_unresponsive: Callable[[], None] = lambda: None) -> None:
        """``on_unresponsive``: called once the guest is taken for dead (the VM is to go)."""
        self._channel = channel
        self._on_unresponsive = on_unresponsive
        self._watches: set[asyncio.Task[None]] = set()  # each ends within AGENT_ANSWER_S
        self._cell_done = asyncio.Event()
        self._limits = limits or CellLimits()
        self._publish = publish
        self._ask_input = ask_input
        self._log = log or logging.getLogger(__name__)
        self._running: int | None = None  # the execute request a cell waits on
        self._cells: OrderedDict[int, _Cell] = OrderedDict()  # by request id
        self._last_parent: JSONDict = {}
        channel.on_late_event = self._late_event

    # --- execute ------------------------------------------------------------------------------
    async def execute(self, code: str, *, silent: bool, store_history: bool,
                      user_expressions: dict[str, Any], allow_stdin: bool, parent: JSONDict,
                      ident: Any) -> JSONDict:
        """The execute reply's content. Raises ``VMDied`` when the VM goes away during the
        cell, and ``SandboxError`` when the agent cannot run it."""
        channel = self._live_channel()
        request = self._build(p.Execute, channel, code=code, silent=silent,
                              store_history=store_history, user_expressions=user_expressions,
                              allow_stdin=allow_stdin,
                              parent_msg_id=parent.get("header", {}).get("msg_id", ""))
        cell = self._remember(request.id, parent)
        try:
            final = await self._run_cell(channel, request, cell, ident)
        finally:
            cell.budget.ended = True
        if isinstance(final, p.AgentError):
            raise SandboxError(f"{final.error_type}: {final.message}")
        return self._execute_reply(final, parent)

    async def _run_cell(self, channel: DualPortChannel, request: p.Execute, cell: _Cell,
                        ident: Any) -> p.ExecuteReply | p.AgentError:
        parent, budget = cell.parent, cell.budget
        inputs = _InputRelay(self._ask_input, channel, request.id, parent, ident)
        self._running = request.id
        self._cell_done = asyncio.Event()
        notice = self._notice_under(parent)
        timer = CellTimer(self._limits.timeout_s, self.interrupt, self._end_worker, notice)
        try:
            with timer:
                async for event in channel.stream(request):
                    if isinstance(event, p.ExecuteReply | p.AgentError):
                        return event
                    event = _counted(event)
                    if isinstance(event, p.InputRequest):
                        inputs.ask(event)
                    elif budget.allows(event):
                        self.forward(event, parent)
        except (VMDied, RequestTooLarge):
            raise
        except SandboxError as exc:  # the channel closed: the VM is gone
            raise VMDied(str(exc)) from exc
        finally:
            self._running = None
            self._cell_done.set()
            await inputs.close()
        raise VMDied("the guest sent no completion")

    def _execute_reply(self, done: p.ExecuteReply, parent: JSONDict) -> JSONDict:
        if done.status == "ok":
            return {"status": "ok", "execution_count": done.execution_count,
                    "payload": done.payload, "user_expressions": done.user_expressions}
        # Frontends show an error by its traceback; one without any would show nothing.
        content = {"ename": done.ename, "evalue": done.evalue,
                   "traceback": done.traceback or [f"{done.ename}: {done.evalue}"]}
        if not done.error_shown:  # an interrupt before the cell started, a worker that died
            self._publish("error", content, parent)
        # As ipykernel: payloads whatever the outcome (a cell can page, then fail).
        return {"status": "error", "execution_count": done.execution_count, **content,
                "payload": done.payload, "user_expressions": {}}

    def interrupt(self) -> None:
        """Interrupts the running cell; between cells there is nothing to interrupt. The
        cell may go on (it may catch the interrupt), but the agent must say it passed it on."""
        if self._running is None or self._channel.closed is not None:
            return
        self._watch(p.Interrupt(id=self._channel.next_id()), "answer an interrupt")

    def _end_worker(self) -> None:
        if self._running is not None and self._channel.closed is None:
            self._watch(p.EndWorker(id=self._channel.next_id(), cell=self._running),
                        "end a cell's Python process", self._cell_done)

    def _watch(self, request: p.Message, what: str, then: asyncio.Event | None = None) -> None:
        """Sends ``request``, which the agent answers at once; and with ``then``, waits for
        that too. Either missing after ``AGENT_ANSWER_S``, the guest is given up on."""
        async def watch() -> None:
            try:
                await asyncio.wait_for(self._channel.request(request), AGENT_ANSWER_S)
                if then is not None:
                    await asyncio.wait_for(then.wait(), AGENT_ANSWER_S)
            except TimeoutError:
                self._give_up(f"the guest did not {what} within {AGENT_ANSWER_S:g} s")
            except SandboxError:
                pass  # the channel is closed (or full: the guest is stuck, and the cell's
                # own deadline, if any, follows): whoever waits on it learns why

        task = asyncio.get_running_loop().create_task(watch())
        self._watches.add(task)
        task.add_done_callback(self._watches.discard)

    def _give_up(self, detail: str) -> None:
        if self._channel.closed is None:
            self._log.error("the sandbox VM stopped answering: %s", detail)
            self._channel.abandon(VMUnresponsive(detail))
            self._on_unresponsive()

    def _notice_under(self, parent: JSONDict) -> Callable[[str], None]:
        def notice(text: str) -> None:
            self._publish("stream", {"name": "stderr", "text": f"sandbox: {text}\n"}, parent)
        return notice

    # --- events -------------------------------------------------------------------------------
    def forward(self, event: p.Event, parent: JSONDict) -> None:
        """Publishes a guest event on IOPub, under the request ``parent``."""
        if isinstance(event, p.Published):
            own = published.as_event(event)
            if own is None:
                self._log.debug("dropping a published %s whose content is not one",
                                event.msg_type)
                return
            event = own
        match event:
            case p.OutputChunk(name=name, text=text):
                self._publish("stream", {"name": name, "text": text}, parent)
            case p.DisplayData(data=data, metadata=md, transient=tr, update=update):
                self._publish("update_display_data" if update else "display_data",
                              {"data": _mime(data), "metadata": md,
                               "transient": _transient(tr)}, parent)
            case p.ExecuteResult(execution_count=count, data=data, metadata=md):
                self._publish("execute_result", {"execution_count": count,
                                                 "data": _mime(data), "metadata": md}, parent)
            case p.ClearOutput(wait=wait):
                self._publish("clear_output", {"wait": wait}, parent)
            case p.ErrorOutput(ename=ename, evalue=evalue, traceback=tb):
                self._publish("error", {"ename": ename, "evalue": evalue, "traceback": tb},
                              parent)
            case p.CommEvent():
                self._publish(event.kind, _comm_content(event), parent,
                              metadata=event.metadata, buffers=list(event.buffers) or None)
            case _:
                self._log.debug("ignoring guest event %s", type(event).__name__)

    def _remember(self, request_id: int, parent: JSONDict) -> _Cell:
        self._last_parent = parent
        cell = self._cells[request_id] = _Cell(parent, OutputBudget(
            self._limits.max_output_bytes, self._notice_under(parent)))
        while len(self._cells) > _LATE_CELLS:
            self._cells.popitem(last=False)
        return cell

    def _late_event(self, event: p.Event) -> None:
        """An event of a request already answered: what a thread the cell started still
        prints or displays goes under that cell, as in ipykernel, within what is left of
        the cell's output cap. Comm messages (a widget that a thread updates) go out
        whatever their request: under the latest request, as ipykernel sends a comm message
        from a thread of its own."""
        cell = self._cells.get(event.id)
        if cell is not None:
            if cell.budget.allows(event := _counted(event)):
                self.forward(event, cell.parent)
        elif _is_comm(event):
            self.forward(event, self._last_parent)

    # --- introspection ------------------------------------------------------------------------
    async def complete(self, code: str, cursor_pos: int) -> JSONDict:
        reply = await self._ask(p.CompleteReply, p.Complete, code=code, cursor_pos=cursor_pos)
        return {"status": "ok", "matches": reply.matches, "cursor_start": reply.cursor_start,
                "cursor_end": reply.cursor_end, "metadata": reply.metadata}

    async def inspect(self, code: str, cursor_pos: int, detail_level: int) -> JSONDict:
        reply = await self._ask(p.InspectReply, p.Inspect, code=code, cursor_pos=cursor_pos,
                                detail_level=1 if detail_level else 0)
        return {"status": "ok", "found": reply.found, "data": reply.data,
                "metadata": reply.metadata}

    async def is_complete(self, code: str) -> JSONDict:
        reply = await self._ask(p.IsCompleteReply, p.IsComplete, code=code)
        content: JSONDict = {"status": reply.status}
        if reply.status == "incomplete":
            content["indent"] = reply.indent
        return content

    async def history(self, hist_access_type: str, output: bool, raw: bool,
                      session: int | None = None, start: int | None = None,
                      stop: int | None = None, n: int | None = None,
                      pattern: str | None = None, unique: bool = False) -> JSONDict:
        reply = await self._ask(
            p.HistoryReply, p.History, hist_access_type=hist_access_type, output=output,
            raw=raw, session=session or 0, start=start or 0, stop=stop, n=n,
            pattern=pattern or "*", unique=unique)
        return {"status": "ok", "history": [list(row) for row in reply.history]}

    # --- comms --------------------------------------------------------------------------------
    async def comm_info(self, target_name: str | None) -> dict[str, dict[str, str]]:
        return (await self._ask(p.CommInfoReply, p.CommInfo, target_name=target_name)).comms

    async def comm_from_frontend(self, msg: JSONDict) -> None:
        """Delivers a comm_open, comm_msg or comm_close; what the guest's handler prints,
        displays or sends back goes out under ``msg``."""
        channel = self._live_channel()
        request = self._build(_COMM_REQUESTS[msg["header"]["msg_type"]], channel,
                              **_comm_fields(msg))
        self._last_parent = msg
        # A handler that prints for ever is held to the cap a cell is held to.
        budget = OutputBudget(self._limits.max_output_bytes, self._notice_under(msg))
        async for event in channel.stream(request):
            if budget.allows(_counted(event)):
                self.forward(event, msg)

    # --- the debugger (kernel/debugger.py) ------------------------------------------------------
    def on_dap(self, handler: Callable[[Any], None]) -> None:
        self._channel.on_dap = handler

    async def debug_start(self, answer_s: float) -> tuple[int, str, list[str]]:
        """``answer_s``: the worker starts debugpy once it is done with the running cell."""
        reply = await self._ask(p.DebugStarted, p.DebugStart, answer_s=answer_s)
        return reply.port, reply.tmp_prefix, list(reply.skip_paths)

    def dap_send(self, message: JSONDict) -> None:
        channel = self._live_channel()
        channel.send(self._build(p.DapSend, channel, message=message))

    async def dump_cell(self, code: str) -> None:
        await self._ask(p.Ack, p.DumpCell, code=code)

    async def debug_inspect(self, what: str, reference: int = 0, name: str = "",
                            path: str = "") -> JSONDict:
        reply = await self._ask(p.DebugInspectReply, p.DebugInspect, what=what,
                                reference=reference, name=name, path=path)
        return reply.body

    async def debug_stop(self) -> None:
        await self._ask(p.Ack, p.DebugStop)

    # --- requests -----------------------------------------------------------------------------
    def _live_channel(self) -> DualPortChannel:
        closed = self._channel.closed
        if closed is not None:
            raise closed if isinstance(closed, VMDied) else VMDied(str(closed))
        return self._channel

    def _build(self, model: type[E], channel: DualPortChannel, **fields: Any) -> E:
        # What the frontend sent is untrusted too (a negative cursor position): a request
        # the protocol refuses gets the fallback reply, not an exception in ipykernel.
        try:
            return model(id=channel.next_id(), **fields)
        except ValidationError as exc:
            raise SandboxError(f"invalid {model.__name__} request: {exc}") from None

    async def _ask(self, expected: type[E], model: type[p.Message], *,
                   answer_s: float | None = None, **fields: Any) -> E:
        answer_s = INTROSPECTION_S if answer_s is None else answer_s
        channel = self._live_channel()
        try:
            reply = await asyncio.wait_for(channel.request(self._build(model, channel, **fields)),
                                           answer_s)
        except TimeoutError:
            raise SandboxError(f"the guest did not answer {model.__name__} within "
                               f"{answer_s:g} s") from None
        if isinstance(reply, expected):
            return reply
        if isinstance(reply, p.AgentError):
            raise SandboxError(f"{reply.error_type}: {reply.message}")
        raise SandboxError(f"the guest answered {model.__name__} with {type(reply).__name__}")


class _InputRelay:
    """Relays a cell's ``input()`` calls to the frontend, each in a worker thread, and its
    answers to the guest; ``close`` gives up on the questions still open."""

    def __init__(self, ask_input: AskInput, channel: DualPortChannel, request_id: int,
                 parent: JSONDict, ident: Any) -> None:
        self._ask_input = ask_input
        self._channel = channel
        self._request_id = request_id
        self._parent = parent
        self._ident = ident
        self._cancel = threading.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def ask(self, event: p.InputRequest) -> None:
        """The worker waits on one question at a time: another while one is open was not
        asked by ``input()`` but forged by the cell, and is dropped."""
        self._tasks = [task for task in self._tasks if not task.done()]
        if self._tasks:
            return
        self._tasks.append(asyncio.create_task(self._relay(event)))

    async def _relay(self, event: p.InputRequest) -> None:
        value = await asyncio.to_thread(self._ask_input, event.prompt, event.password,
                                        self._parent, self._ident, self._cancel)
        if value is not None:
            self._channel.send(p.InputReply(id=self._request_id, value=value))

    async def close(self) -> None:
        self._cancel.set()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


# type/subtype as RFC 6838 names them: a bundle's keys choose how a frontend renders, and
# the guest must not invent keys that are not MIME types.
_NAME = r"[a-zA-Z0-9][a-zA-Z0-9!#$&^_.+-]{0,126}"
_MIME_TYPE = re.compile(f"{_NAME}/{_NAME}")


def _mime(data: JSONDict) -> JSONDict:
    return {key: value for key, value in data.items() if _MIME_TYPE.fullmatch(key)}


def _counted(event: p.Event) -> p.Event:
    """What a published message is counted as against the output cap: what it publishes."""
    if isinstance(event, p.Published):
        return published.as_event(event) or event
    return event


def _is_comm(event: p.Event) -> bool:
    if isinstance(event, p.Published):
        return event.msg_type.startswith("comm_")
    return isinstance(event, p.CommEvent)


def _transient(transient: JSONDict) -> JSONDict:
    """What the protocol puts in ``transient``: a display id, a string."""
    display_id = transient.get("display_id")
    return {"display_id": display_id} if isinstance(display_id, str) else {}


def _comm_content(event: p.CommEvent) -> JSONDict:
    content: JSONDict = {"comm_id": event.comm_id, "data": event.data}
    if event.kind == "comm_open":
        content["target_name"] = event.target_name or ""
        if event.target_module:
            content["target_module"] = event.target_module
    return content


def _comm_fields(msg: JSONDict) -> JSONDict:
    content = msg["content"]
    kind = msg["header"]["msg_type"]
    fields: JSONDict = {"comm_id": content.get("comm_id", ""),
                        "data": content.get("data") or {},
                        "metadata": msg.get("metadata") or {},
                        "parent_msg_id": msg["header"].get("msg_id", "")}
    if kind == "comm_open":
        fields["target_name"] = content.get("target_name", "")
    if kind != "comm_close":
        fields["buffers"] = [bytes(b) for b in msg.get("buffers") or []]
    return fields
