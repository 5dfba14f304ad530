"""Serves a FuseServer over a connected stream socket, in a thread of its own.

The stream needs no framing of its own: each request starts with fuse_in_header.len. A
length outside [header, MAX_REQUEST] means the stream can no longer be trusted to be in
step, so the connection is closed; the guest's relay then aborts its mount.
"""

import logging
import socket
import threading
from typing import Protocol

from sandbox_kernel.share import fuse_wire as w

log = logging.getLogger(__name__)
_CHUNK = 256 * 1024


class Handler(Protocol):
    def handle(self, request: bytes) -> bytes | None: ...
    def close(self) -> None: ...


class ShareTransport:
    def __init__(self, sock: socket.socket, server: Handler, name: str = "share") -> None:
        self._sock = sock
        self._server = server
        self._stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        try:
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes a blocked recv or send
        except OSError:
            pass
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join(timeout)

    def _run(self) -> None:
        try:
            self._serve()
        except OSError as e:
            if not self._stopping.is_set():
                log.warning("share: connection ended: %s", e)
        except Exception:
            log.exception("share: transport failed")
        finally:
            for close in (self._server.close, self._sock.close):
                try:
                    close()
                except Exception:
                    log.exception("share: closing failed")

    def _serve(self) -> None:
        buf = bytearray(w.MAX_REQUEST + _CHUNK)
        view = memoryview(buf)
        start = end = 0
        while not self._stopping.is_set():
            received = self._sock.recv_into(view[end:])
            if not received:
                return
            end += received
            while end - start >= 4:
                length = w.request_length(view[start:start + 4])
                if not w.IN_HEADER.size <= length <= w.MAX_REQUEST:
                    log.error("share: request of %d bytes; closing the connection", length)
                    return
                if end - start < length:
                    break
                reply = self._server.handle(bytes(view[start:start + length]))
                start += length
                if reply is not None:
                    self._sock.sendall(reply)
            if start:  # keep what is left at the front, so a whole request always fits
                buf[:end - start] = bytes(view[start:end])
                end -= start
                start = 0
