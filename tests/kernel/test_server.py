"""The kernel behind jupyter_server, as JupyterLab reaches it: REST to start, restart and stop
it, and the kernel's channels over one websocket."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websocket
from jupyter_client.jsonutil import json_default
from jupyter_client.session import Session

from tests.kernel.kernels import BOOT_TIMEOUT, KERNEL_NAME
from tests.leftovers import qemu_processes

TOKEN = "sandbox-test-token"

pytestmark = [pytest.mark.vm, pytest.mark.timeout(240)]


class Server:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.ws_base = f"ws://127.0.0.1:{port}"

    def rest(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        request = urllib.request.Request(
            f"{self.base}{path}", method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"token {TOKEN}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=BOOT_TIMEOUT) as response:
            text = response.read()
        return json.loads(text) if text else None

    def channels(self, kernel_id: str) -> websocket.WebSocket:
        return websocket.create_connection(
            f"{self.ws_base}/api/kernels/{kernel_id}/channels?token={TOKEN}",
            timeout=BOOT_TIMEOUT)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter_server", f"--port={port}", "--ip=127.0.0.1",
         "--no-browser", "--allow-root", f"--IdentityProvider.token={TOKEN}",
         f"--ServerApp.root_dir={tmp_path}"],
        stdout=log, stderr=subprocess.STDOUT,
        # Not JUPYTER_NO_CONFIG: the server leaves the empty config folder it makes for that.
        env={**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
             "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")})
    server = Server(port)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                server.rest("GET", "/api/status")
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((tmp_path / "server.log").read_text()) from None
                time.sleep(0.2)
        yield server
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def execute(ws: websocket.WebSocket, session: Session, code: str) -> tuple[str, dict[str, Any]]:
    """The stdout of one cell and its reply, through the websocket."""
    msg = session.msg("execute_request", {"code": code, "silent": False, "store_history": True,
                                          "user_expressions": {}, "allow_stdin": False,
                                          "stop_on_error": True})
    ws.send(json.dumps({**msg, "channel": "shell"}, default=json_default))
    stdout, reply, idle = "", None, False
    while reply is None or not idle:
        incoming = json.loads(ws.recv())
        if incoming["parent_header"].get("msg_id") != msg["header"]["msg_id"]:
            continue
        kind = incoming["msg_type"]
        if kind == "stream" and incoming["content"]["name"] == "stdout":
            stdout += incoming["content"]["text"]
        elif kind == "execute_reply":
            reply = incoming["content"]
        elif kind == "status" and incoming["content"]["execution_state"] == "idle":
            idle = True
    return stdout, reply


def test_a_server_starts_runs_restarts_and_stops_the_kernel(server: Server) -> None:
    before = qemu_processes()
    kernel = server.rest("POST", "/api/kernels", {"name": KERNEL_NAME})
    session = Session(key=b"")  # the server signs for the browser; the socket carries JSON
    ws = server.channels(kernel["id"])
    try:
        stdout, reply = execute(ws, session, "kept = 6 * 7\nprint(kept)")
        assert (stdout, reply["status"]) == ("42\n", "ok")
        server.rest("POST", f"/api/kernels/{kernel['id']}/restart")
        _, reply = execute(ws, session, "kept")
        assert reply["ename"] == "NameError"  # a fresh VM
    finally:
        ws.close()
        server.rest("DELETE", f"/api/kernels/{kernel['id']}")
    assert qemu_processes() <= before


def test_exit_in_a_cell_gets_a_fresh_kernel_from_the_server_s_restarter(server: Server) -> None:
    kernel = server.rest("POST", "/api/kernels", {"name": KERNEL_NAME})
    session = Session(key=b"")
    ws = server.channels(kernel["id"])
    try:
        execute(ws, session, "kept = 1")
        execute(ws, session, "exit()")
        restarted = False
        while not restarted:  # the server says so on IOPub; the test's timeout bounds this
            incoming = json.loads(ws.recv())
            restarted = incoming["msg_type"] == "status" and \
                incoming["content"]["execution_state"] == "restarting"
        _, reply = execute(ws, session, "kept")
        assert reply["ename"] == "NameError"
    finally:
        ws.close()
        server.rest("DELETE", f"/api/kernels/{kernel['id']}")
