"""Asking the frontend for input on the stdin channel without blocking the event loop."""

import threading
from typing import Any

import zmq

# A zmq socket is not thread-safe: whatever the guest sends, one question at a time uses it
# (a thread given up on may still be finishing when the next question starts).
_STDIN = threading.Lock()
_POLL_S = 0.05


def ask_frontend(kernel: Any, prompt: str, password: bool, parent: dict[str, Any],
                 ident: Any, cancelled: threading.Event) -> str | None:
    """Runs in a worker thread; None when cancelled (the cell ended or was interrupted)."""
    while not _STDIN.acquire(timeout=_POLL_S):
        if cancelled.is_set():
            return None
    try:
        return _ask(kernel, prompt, password, parent, ident, cancelled)
    finally:
        _STDIN.release()


def _ask(kernel: Any, prompt: str, password: bool, parent: dict[str, Any], ident: Any,
         cancelled: threading.Event) -> str | None:
    sock = kernel.stdin_socket
    while True:  # stale replies from an earlier, abandoned request
        try:
            sock.recv_multipart(zmq.NOBLOCK)
        except zmq.ZMQError:
            break
    kernel.session.send(sock, "input_request", {"prompt": prompt, "password": password},
                        parent, ident=ident)
    while not cancelled.is_set():
        readable, _, _ = zmq.select([sock], [], [], _POLL_S)
        if readable:
            _, reply = kernel.session.recv(sock)
            if reply is not None:
                value = reply.get("content", {}).get("value", "")
                return value if isinstance(value, str) else str(value)
    return None
