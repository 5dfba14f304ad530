"""Listening on the kernel's TCP ports from the first milliseconds of the process.

A frontend connects as soon as it has launched the kernel and, while nothing listens, tries
again every 100 to 200 ms (ZMQ's reconnect interval plus jitter). A socket that listens early
takes that connection into its backlog; ZMQ adopts the socket (``ZMQ_USE_FD``) when the kernel
binds, and the handshake goes on at once instead of at the frontend's next try. Only this
module, ``json`` and ``socket`` load before the listening starts.
"""

import contextlib
import json
import socket
from collections.abc import Sequence

# The heartbeat binds in its own thread and nothing waits on it to start, so it keeps its
# ordinary bind.
_EARLY_PORTS = ("shell_port", "iopub_port", "stdin_port", "control_port")
_BACKLOG = 128


def connection_file_argument(argv: Sequence[str]) -> str | None:
    for index, arg in enumerate(argv):
        if arg in ("-f", "--f") and index + 1 < len(argv):
            return argv[index + 1]
        for prefix in ("-f=", "--f="):
            if arg.startswith(prefix):
                return arg.removeprefix(prefix)
    return None


def _listen(ip: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    try:
        # What ZMQ would set on a socket it bound itself.
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((ip, port))
        listener.listen(_BACKLOG)
        # ZMQ accepts from its I/O thread after a readiness event; a connection reset in
        # between must give EAGAIN there, not block the thread.
        listener.setblocking(False)
    except BaseException:
        listener.close()
        raise
    return listener


def listen_early(argv: Sequence[str]) -> dict[int, socket.socket]:
    """Listening sockets by port, or none where anything is unusual: the kernel's own bind then
    runs as usual and reports any problem itself."""
    path = connection_file_argument(argv)
    if path is None:
        return {}
    listeners: dict[int, socket.socket] = {}
    try:
        with open(path, encoding="utf-8") as file:
            info = json.load(file)
        if info.get("transport", "tcp") != "tcp":
            return {}
        ip = str(info.get("ip", "127.0.0.1"))
        for key in _EARLY_PORTS:
            port = info.get(key)
            if isinstance(port, int) and port > 0 and port not in listeners:
                listeners[port] = _listen(ip, port)
    except (OSError, ValueError, TypeError, AttributeError):
        close_all(listeners)
        return {}
    return listeners


def close_all(listeners: dict[int, socket.socket]) -> None:
    for listener in listeners.values():
        with contextlib.suppress(OSError):
            listener.close()
    listeners.clear()
