"""The worker's debugger side: debugpy in the worker, and a thread that serves the host's debug
requests while the main thread runs a cell or waits at a breakpoint, as ipykernel's control
thread does.

The agent hands these requests over a pipe of their own (guest/agent.py). The thread relays
Debug Adapter Protocol messages between that pipe and debugpy's adapter, on the guest's
loopback; dumps cells to the files their code is compiled under; and reads the namespace for
the variable explorer. Nothing here is imported before a frontend starts a debug session.
"""

import json
import os
import socket
import threading
from typing import Any

from sandbox_kernel.constants import MAX_LINE_BYTES
from sandbox_kernel.guest import wire
from sandbox_kernel.guest.cell_names import cell_file_name, cell_folder

_HEADER = b"Content-Length: "
_SEPARATOR = b"\r\n\r\n"
# The guest's own code, which stepping must not enter (it is not in a library folder), and
# the worker's command line, the bottom frame of every stack.
GUEST_CODE = ("/opt/sandbox/**", "<string>")


class DebugSide:
    def __init__(self, shell: Any, side_fd: int, write_line: Any) -> None:
        self._shell = shell
        self._side_fd = side_fd
        self._write_line = write_line  # the worker's message pipe, a whole line at a time
        self._port = 0
        self._adapter: socket.socket | None = None
        self._adapter_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._removed_cleanup: dict[int, Any] = {}
        self._explorer: Any = None

    # --- on the main thread, while it is idle --------------------------------------------------
    def start(self) -> dict[str, Any]:
        """Starts debugpy once; connects to its adapter; serves the side pipe from now on."""
        if not self._port:
            import debugpy

            self._port = _free_port()
            debugpy.listen(("127.0.0.1", self._port))
        self._keep_leading_empty_lines()
        os.makedirs(cell_folder(), mode=0o700, exist_ok=True)
        self._connect()
        if self._thread is None:
            self._thread = _untraced(threading.Thread(target=self._serve, daemon=True,
                                                      name="sandbox-debug"))
            self._thread.start()
        return {"port": self._port, "tmp_prefix": cell_folder() + "/",
                "skip_paths": list(GUEST_CODE)}

    def _keep_leading_empty_lines(self) -> None:
        # As ipykernel: a breakpoint's line must be the line the cell's code object has.
        from IPython.core.inputtransformer2 import leading_empty_lines

        cleanups = self._shell.input_transformer_manager.cleanup_transforms
        if leading_empty_lines in cleanups:
            index = cleanups.index(leading_empty_lines)
            self._removed_cleanup[index] = cleanups.pop(index)

    def _connect(self) -> None:
        with self._adapter_lock:
            if self._adapter is not None:
                return
            self._adapter = socket.create_connection(("127.0.0.1", self._port), timeout=30)
            self._adapter.settimeout(None)
            _untraced(threading.Thread(target=self._relay_from_adapter, args=(self._adapter,),
                                       daemon=True, name="sandbox-debug-adapter")).start()

    # --- the side thread -----------------------------------------------------------------------
    def _serve(self) -> None:
        with os.fdopen(self._side_fd, "rb", buffering=1 << 16) as requests:
            for line in requests:
                try:
                    request = wire.parse_request(line)
                except ValueError:
                    continue  # the agent validated it already
                try:
                    self._handle(request)
                except Exception as exc:  # one bad request must not end the debugger
                    self._send("agent_error", request.id, error_type=type(exc).__name__,
                               message=str(exc)[:2000])

    def _handle(self, request: Any) -> None:
        match request.type:
            case "dap_send":
                self._to_adapter(request.message)
            case "dump_cell":
                self._dump(request.code)
                self._send("ack", request.id)
            case "debug_inspect":
                self._send("debug_inspect_reply", request.id, body=self._inspect(request))
            case "debug_stop":
                self._stop()
                self._send("ack", request.id)

    def _to_adapter(self, message: dict[str, Any]) -> None:
        body = json.dumps(message).encode("utf-8")
        with self._adapter_lock:
            if self._adapter is None:
                raise ConnectionError("the debugger is not started")
            self._adapter.sendall(_HEADER + str(len(body)).encode() + _SEPARATOR + body)

    def _relay_from_adapter(self, adapter: socket.socket) -> None:
        """DAP messages from debugpy's adapter, one event line each, to the host."""
        buffer = b""
        while True:
            try:
                data = adapter.recv(1 << 16)
            except OSError:
                return
            if not data:
                return
            buffer += data
            while (end := buffer.find(_SEPARATOR)) >= 0:
                head = buffer[:end]
                start = head.rfind(_HEADER)
                length = int(head[start + len(_HEADER):]) if start >= 0 else 0
                if len(buffer) < end + len(_SEPARATOR) + length:
                    break
                body = buffer[end + len(_SEPARATOR):end + len(_SEPARATOR) + length]
                buffer = buffer[end + len(_SEPARATOR) + length:]
                try:
                    message = json.loads(body)
                except ValueError:
                    continue
                self._send("dap_message", 0, message=message)

    def _dump(self, code: str) -> None:
        path = cell_file_name(code)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(code)

    def _inspect(self, request: Any) -> dict[str, Any]:
        from sandbox_kernel.guest import debug_variables

        if request.what == "variables":
            if request.reference == 0 or self._explorer is None:
                self._explorer = debug_variables.Explorer(self._shell.user_ns)
            return {"variables": self._explorer.children(request.reference)}
        if request.what == "rich":
            result = self._shell.user_expressions({request.name: request.name})[request.name]
            if result.get("status") != "ok":
                return {"data": {}, "metadata": {}}
            return {"data": result.get("data", {}), "metadata": result.get("metadata", {})}
        if request.what == "source":
            return _source(request.path)
        return {"modules": debug_variables.modules()}

    def _stop(self) -> None:
        with self._adapter_lock:
            adapter, self._adapter = self._adapter, None
        if adapter is not None:
            adapter.close()
        cleanups = self._shell.input_transformer_manager.cleanup_transforms
        for index in sorted(self._removed_cleanup):
            cleanups.insert(index, self._removed_cleanup.pop(index))
        self._explorer = None

    def _send(self, kind: str, request_id: int, /, **fields: Any) -> None:
        # Not the worker channel's send: that one may raise a pending KeyboardInterrupt,
        # which is the cell's, not this thread's.
        line = wire.encode(kind, request_id, **fields)
        if len(line) > MAX_LINE_BYTES:
            line = wire.encode("agent_error", request_id, error_type="TooLarge",
                               message=f"a {kind} of {len(line)} bytes")
        self._write_line(line)


def _untraced(thread: threading.Thread) -> threading.Thread:
    """Neither traced nor listed by debugpy, as its own threads: this is not the user's code,
    and tracing it would slow every DAP message."""
    thread.is_pydev_daemon_thread = True  # type: ignore[attr-defined]
    thread.pydev_do_not_trace = True  # type: ignore[attr-defined]
    return thread


def _source(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return {"content": fh.read(MAX_LINE_BYTES // 2)}
    except OSError:
        return {}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
