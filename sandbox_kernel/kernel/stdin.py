"""Asking the frontend for input on the stdin channel without blocking the event loop."""

import threading
from typing import Any

import zmq


def ask_frontend(kernel: Any, prompt: str, password: bool, parent: dict[str, Any],
                 ident: Any, cancelled: threading.Event) -> str | None:
    """Runs in a worker thread; None when cancelled (the cell ended or was interrupted)."""
    sock = kernel.stdin_socket
    while True:  # stale replies from an earlier, abandoned request
        try:
            sock.recv_multipart(zmq.NOBLOCK)
        except zmq.ZMQError:
            break
    kernel.session.send(sock, "input_request", {"prompt": prompt, "password": password},
                        parent, ident=ident)
    while not cancelled.is_set():
        readable, _, _ = zmq.select([sock], [], [], 0.05)
        if readable:
            _, reply = kernel.session.recv(sock)
            if reply is not None:
                value = reply.get("content", {}).get("value", "")
                return value if isinstance(value, str) else str(value)
    return None
