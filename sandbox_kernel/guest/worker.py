"""The worker: an unprivileged process that runs cells in a persistent IPython shell."""

import builtins
import getpass
import os
import random
import signal
import sys
import threading
import time
from collections import deque
from types import FrameType
from typing import Any

from sandbox_kernel import __version__
from sandbox_kernel.constants import FINAL_EVENT_TYPES, MAX_LINE_BYTES
from sandbox_kernel.guest import wire
from sandbox_kernel.guest.python_output import (
    OutputEvents,
    OutputFlusher,
    flush_outputs,
    open_output,
)
from sandbox_kernel.guest.spawn import USER_HOME
from sandbox_kernel.guest.wire import Request

# What a request handler answers: the event's type and its fields.
Reply = tuple[str, dict[str, Any]]

class WorkerChannel:
    """Requests in on one pipe; events, output among them, out on another."""

    def __init__(self, req_fd: int, msg_fd: int) -> None:
        self._requests = os.fdopen(req_fd, "rb", buffering=1 << 16)
        self._msg_fd = msg_fd
        self._line_lock = threading.Lock()
        # Held while the output buffers are flushed and what follows them is written, by the
        # flusher thread too: else output it had taken from a buffer could land after an
        # event that a cell sent later.
        self.order = threading.Lock()
        self.current_id = 0
        self.deferred: deque[Any] = deque()
        self.after_send: Any = lambda: None

    def send(self, kind: str, request_id: int, /, **fields: Any) -> None:
        # Sized before encoding: encoding a result of many tens of MB crashed the worker.
        size = _rough_size(fields)
        line = b"" if size > MAX_LINE_BYTES else wire.encode(kind, request_id, **fields)
        if size > MAX_LINE_BYTES or len(line) > MAX_LINE_BYTES:
            line = _instead_of_too_large(kind, request_id, max(size, len(line)), fields)
        with self.order:
            flush_outputs()
            self.write_line(line)
        self.after_send()

    def write_line(self, line: bytes) -> None:
        view = memoryview(line)
        with self._line_lock:
            while view:
                view = view[os.write(self._msg_fd, view):]

    def receive(self) -> Any:
        if self.deferred:
            return self.deferred.popleft()
        while True:
            line = self._requests.readline()
            if not line:
                raise EOFError
            try:
                return wire.parse_request(line)
            except ValueError:
                continue  # the agent validated it already; nothing sensible to answer


def _rough_size(value: Any, budget: int = MAX_LINE_BYTES + 1) -> int:
    """At least the encoded size of ``value`` (its strings and bytes), counted only until it
    is over the line limit."""
    if isinstance(value, (str, bytes, bytearray)):
        return len(value)
    if isinstance(value, dict):
        items: Any = (x for pair in value.items() for x in pair)
    elif isinstance(value, (list, tuple)):
        items = iter(value)
    else:
        return 8
    total = 0
    for item in items:
        total += _rough_size(item, budget - total)
        if total >= budget:
            break
    return total


def _instead_of_too_large(kind: str, request_id: int, size: int, fields: dict[str, Any]
                          ) -> bytes:
    """What goes out in place of an event the host would drop for its size: a note the user
    sees, and for an answer the host waits on, an answer."""
    note = (f"The sandbox did not send a {kind} of {size / 2**20:.1f} MB: its limit is "
            f"{MAX_LINE_BYTES // 2**20} MB.")
    if kind == "execute_reply":
        return wire.encode("execute_reply", request_id, status="error", ename="OutputTooLarge",
                           evalue=note, traceback=[note],
                           execution_count=fields.get("execution_count", 0))
    if kind in FINAL_EVENT_TYPES:
        return wire.encode("agent_error", request_id, error_type="OutputTooLarge", message=note)
    return wire.encode("output", request_id, name="stderr", text=note + "\n")


# An interrupt that comes while the main thread runs one of these waits until it is done: a
# line cut in half would break the pipe's framing, and output written before the interrupt
# would be written again, since its buffer would keep it. (Masking the signal instead would
# leave it to other threads, and a main thread blocked on a lock would then never see it.)
_WRITERS = frozenset({WorkerChannel.send.__code__, WorkerChannel.write_line.__code__,
                      OutputEvents.write.__code__})


def _writing(frame: FrameType | None) -> bool:
    while frame is not None:
        if frame.f_code in _WRITERS:
            return True
        frame = frame.f_back
    return False


def _parent_of(request: Request) -> dict[str, Any]:
    """The Jupyter request as ipykernel's shell knows it, as far as the guest is told of it."""
    msg_type = "execute_request" if request.type == "execute" else request.type
    header = {"msg_id": request.parent_msg_id, "msg_type": msg_type}
    return {"header": header, "msg_id": header["msg_id"], "msg_type": msg_type,
            "parent_header": {}, "metadata": {}, "content": {}}


def _unshown_error(result: Any) -> tuple[str, str, list[str]]:
    """A failed cell's error when IPython showed no traceback for it, as ipykernel takes it."""
    from sandbox_kernel.guest.shell import error_text

    error = result and (result.error_before_exec or result.error_in_exec)
    if error is None:
        return "UnknownError", "", []
    return type(error).__name__, error_text(error), []


class Worker:
    def __init__(self, channel: WorkerChannel, debug_fd: int = -1) -> None:
        from sandbox_kernel.guest import ipykernel_face
        from sandbox_kernel.guest.comms import install_comm_manager
        from sandbox_kernel.guest.shell import SandboxShell

        self.channel = channel
        self.debug_fd = debug_fd
        self.debug_side: Any = None  # once a frontend starts a debug session
        self.flusher = OutputFlusher(self._flush_tick)
        self.executing = False
        self.interrupt_pending = False
        self.allow_stdin = False
        from traitlets.config import Config

        config = Config()
        config.HistoryManager.hist_file = ":memory:"  # no sqlite file I/O per cell
        config.IPKernelApp = Config()  # what ipykernel's app gives its shell: read as a sign
        self.shell = SandboxShell.instance(channel=channel, config=config)
        self.comms = install_comm_manager(channel)
        self.shell.kernel = ipykernel_face.IPythonKernel(self.shell, channel)
        ipykernel_face.install(SandboxShell)
        builtins.input = self._input
        getpass.getpass = self._getpass
        signal.signal(signal.SIGINT, self._on_sigint)
        # Blocked from its start (guest/spawn.py); one that came meanwhile is kept for the cell.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        channel.after_send = self._deliver_pending_interrupt

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        # The agent signals only while a request is in flight, so a signal that comes before
        # the cell's code has started is kept for it rather than lost.
        if self.executing and not _writing(frame):
            self.interrupt_pending = False
            raise KeyboardInterrupt
        self.interrupt_pending = True

    def _flush_tick(self) -> None:
        with self.channel.order:
            flush_outputs()
        # An interrupt kept back while output went out, in a cell that sends no event after
        # it: signal again, now that the main thread may be elsewhere.
        if self.executing and self.interrupt_pending:
            os.kill(os.getpid(), signal.SIGINT)

    def _deliver_pending_interrupt(self) -> None:
        if self.executing and self.interrupt_pending:
            self.interrupt_pending = False
            raise KeyboardInterrupt

    # --- stdin ----------------------------------------------------------------------------
    def _ask(self, prompt: str, password: bool) -> str:
        if not self.allow_stdin:
            from IPython.core.error import StdinNotImplementedError

            asked = "getpass" if password else "raw_input"  # ipykernel's words
            raise StdinNotImplementedError(
                f"{asked} was called, but this frontend does not support input requests.")
        self.channel.send("input_request", self.channel.current_id, prompt=str(prompt),
                          password=password)
        while True:
            request = self.channel.receive()
            if request.type == "input_reply" and request.id == self.channel.current_id:
                return str(request.value)
            self.channel.deferred.append(request)

    def _input(self, prompt: object = "") -> str:
        return self._ask(str(prompt), False)

    def _getpass(self, prompt: str = "", stream: Any = None) -> str:
        # ipykernel's getpass: no prompt by default, and a warning for a stream it cannot use.
        if stream is not None:
            import warnings

            warnings.warn("The `stream` parameter of `getpass.getpass` will have no effect "
                          "when using ipykernel", UserWarning, stacklevel=2)
        return self._ask(prompt, True)

    # --- requests -------------------------------------------------------------------------
    def serve(self) -> None:
        self.channel.send("hello", 0, agent_version=__version__)
        while True:
            try:
                request = self.channel.receive()
            except EOFError:
                return
            except KeyboardInterrupt:
                continue
            self.channel.current_id = request.id
            if getattr(request, "parent_msg_id", ""):
                self.shell.set_parent(_parent_of(request))
            handler = getattr(self, f"on_{request.type}", None)
            reply: Reply
            try:
                reply = handler(request) if handler else (
                    "agent_error", {"error_type": "Unsupported", "message": request.type})
            except KeyboardInterrupt:
                reply = "agent_error", {"error_type": "KeyboardInterrupt", "message": ""}
            except Exception as exc:
                reply = "agent_error", {"error_type": type(exc).__name__,
                                        "message": str(exc)[:4000]}
            kind, fields = reply
            self.channel.send(kind, request.id, **fields)
            self.interrupt_pending = False
            if request.type == "reseed":
                self._warm_translation()

    def on_execute(self, req: Request) -> Reply:
        shell = self.shell
        shell.last_error, shell.last_error_shown = None, False
        self.allow_stdin = req.allow_stdin
        self.executing = True
        self.flusher.running = True
        try:
            if self.interrupt_pending:
                raise KeyboardInterrupt
            result = shell.run_cell(req.code, store_history=req.store_history, silent=req.silent)
        except KeyboardInterrupt:
            result = None
            shell.last_error, shell.last_error_shown = ("KeyboardInterrupt", "", []), False
        finally:
            self.executing = False
            self.flusher.running = False
        payloads = shell.payload_manager
        assert payloads is not None
        payload = payloads.read_payload()
        payloads.clear_payload()
        count = shell.execution_count - 1
        ok = result is not None and result.success
        if ok:
            return "execute_reply", {
                "status": "ok", "execution_count": count, "payload": payload,
                "user_expressions": shell.user_expressions(req.user_expressions)}
        ename, evalue, tb = shell.last_error or _unshown_error(result)
        return "execute_reply", {
            "status": "error", "execution_count": count, "ename": ename, "evalue": evalue,
            "traceback": tb, "error_shown": shell.last_error_shown, "payload": payload}

    def on_complete(self, req: Request) -> Reply:
        from IPython.core.completer import provisionalcompleter, rectify_completions

        with provisionalcompleter():
            raw = self.shell.Completer.completions(req.code, req.cursor_pos)
            found = list(rectify_completions(req.code, raw))
        start = found[0].start if found else req.cursor_pos
        end = found[0].end if found else req.cursor_pos
        types = [{"start": c.start, "end": c.end, "text": c.text, "type": c.type,
                  "signature": c.signature} for c in found]
        return "complete_reply", {"matches": [c.text for c in found], "cursor_start": start,
                                  "cursor_end": end,
                                  "metadata": {"_jupyter_types_experimental": types}}

    def on_inspect(self, req: Request) -> Reply:
        from IPython.utils.tokenutil import token_at_cursor

        name = token_at_cursor(req.code, req.cursor_pos)
        try:
            bundle = self.shell.object_inspect_mime(name, detail_level=req.detail_level)
        except KeyError:
            return "inspect_reply", {"found": False}
        if not self.shell.enable_html_pager:
            bundle.pop("text/html", None)
        from sandbox_kernel.guest.shell import jsonable

        return "inspect_reply", {"found": True, "data": jsonable(bundle)}

    def on_is_complete(self, req: Request) -> Reply:
        status, indent = self.shell.input_transformer_manager.check_complete(req.code)
        return "is_complete_reply", {
            "status": status, "indent": " " * (indent or 0) if status == "incomplete" else ""}

    def on_history(self, req: Request) -> Reply:
        hm = self.shell.history_manager
        assert hm is not None
        if req.hist_access_type == "tail":
            rows = hm.get_tail(req.n or 10, raw=req.raw, output=req.output, include_latest=True)
        elif req.hist_access_type == "range":
            rows = hm.get_range(req.session, req.start, req.stop, raw=req.raw, output=req.output)
        else:
            rows = hm.search(req.pattern, raw=req.raw, output=req.output, n=req.n,
                             unique=req.unique)
        # IPython numbers the live session 0 in ranges; the protocol wants its real number.
        current = hm.session_number
        return "history_reply", {"history": [(sess or current, line, entry)
                                             for sess, line, entry in rows]}

    def on_comm_open(self, req: Request) -> Reply:
        self.comms.from_host("comm_open", req)
        return "ack", {}

    def on_comm_msg(self, req: Request) -> Reply:
        self.comms.from_host("comm_msg", req)
        return "ack", {}

    def on_comm_close(self, req: Request) -> Reply:
        self.comms.from_host("comm_close", req)
        return "ack", {}

    def on_comm_info(self, req: Request) -> Reply:
        return "comm_info_reply", {"comms": self.comms.info(req.target_name)}

    def on_warm(self, req: Request) -> Reply:
        import gc
        import importlib

        for name in req.modules:
            try:
                importlib.import_module(name)
            except ImportError:
                pass
        # A cell with a result and one with a traceback: their first runs set up a good deal
        # (formatters, ultratb, pygments) that a snapshot should hold.
        self.shell.run_cell_unseen("print(end='')\n0")
        self.shell.run_cell_unseen("raise KeyboardInterrupt")
        self.shell.last_error = None
        # The completer, and jedi's caches (its grammar, the builtins): without them in the
        # snapshot, the first completion after a restore would build them, slowly.
        completer = self.shell.Completer
        user_ns = completer.namespace
        completer.namespace = {"os": os, **{alias: sys.modules[name] for alias, name in
                                            (("np", "numpy"), ("plt", "matplotlib.pyplot"))
                                            if name in sys.modules}}
        try:
            for code in ("int.bit_l", "impo", "os.pa", "np.ar", "plt.pl"):
                self.on_complete(Request(code=code, cursor_pos=len(code)))
        finally:
            completer.namespace = user_ns
        # Out of the collector's reach from now on: a full collection in a restored VM would
        # walk these objects and write to their headers, copying the snapshot's pages into
        # each VM's own memory.
        gc.collect()
        gc.freeze()
        return "ack", {}

    def on_mount_share(self, req: Request) -> Reply:
        # The agent has mounted the folder (if any): cells run there, as in a local kernel
        # started in the notebook's folder.
        self.shell.sandbox_description = req.description
        if req.name is not None:
            os.chdir(f"{USER_HOME}/{req.name}")
            self.shell.user_ns["_dh"].append(os.getcwd())
        return "ack", {}

    def on_debug_start(self, req: Request) -> Reply:
        if self.debug_side is None:
            from sandbox_kernel.guest.debug_side import DebugSide

            self.debug_side = DebugSide(self.shell, self.debug_fd, self.channel.write_line)
        return "debug_started", self.debug_side.start()

    def on_reseed(self, req: Request) -> Reply:
        # The agent has reseeded the kernel; Python's generators were copied with the snapshot.
        random.seed()
        # Only if loaded: touching numpy.random would import it (numpy 2 does so lazily),
        # and one imported after the restore seeds itself from the reseeded kernel.
        # One still being imported (a fresh worker's preload) will seed itself from the
        # reseeded kernel.
        seed = getattr(sys.modules.get("numpy.random"), "seed", None)
        if seed is not None:
            seed()
        # The host's local time, as a local kernel would show it; the children inherit it.
        if req.timezone:
            os.environ["TZ"] = req.timezone
        else:
            os.environ.pop("TZ", None)
        time.tzset()
        return "ack", {}

    def _warm_translation(self) -> None:
        # QEMU's translated code is not part of a snapshot, so a restored VM's first cell
        # would translate the whole cell path, slowly under TCG. Run it once now, after
        # the reply: a request that arrives meanwhile waits in the pipe, as it would anyway.
        # An interrupt meanwhile is kept for that request (self.executing is False here).
        self.shell.run_cell_unseen("print(end='')\n0")
        wire.encode("execute_reply", 0, status="ok", execution_count=0,
                    user_expressions=self.shell.user_expressions({}))


def _preload(modules: list[str]) -> None:
    """What a restored VM's worker had imported, imported while the user starts: a cell that
    imports one of them meanwhile waits only for the rest of that import."""
    import importlib

    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # the cell that imports it will say what is wrong
            pass


def main() -> None:
    channel = WorkerChannel(int(os.environ.pop("SANDBOX_REQ_FD")),
                            int(os.environ.pop("SANDBOX_MSG_FD")))
    preload = [name for name in os.environ.pop("SANDBOX_PRELOAD", "").split(",") if name]
    sys.stdout = open_output("stdout", 1, channel)
    sys.stderr = open_output("stderr", 2, channel)
    sys.path.insert(0, "")  # like ipykernel: the working directory's modules are importable
    os.environ.pop("PYTHONPATH", None)
    worker = Worker(channel, int(os.environ.pop("SANDBOX_SIDE_FD", "-1")))
    if preload:
        threading.Thread(target=_preload, args=(preload,), daemon=True,
                         name="preload").start()
    worker.serve()
