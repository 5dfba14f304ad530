import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import zmq

from sandbox_kernel.kernel.app import SandboxKernelApp
from sandbox_kernel.kernel.early_listen import close_all, connection_file_argument, listen_early


@pytest.mark.parametrize("argv", [["-f", "c.json"], ["--f", "c.json"], ["-f=c.json"],
                                  ["--f=c.json"], ["--debug", "-f", "c.json"]])
def test_the_connection_file_is_found_in_the_usual_spellings(argv: list[str]) -> None:
    assert connection_file_argument(argv) == "c.json"


def test_no_connection_file_means_no_early_listening() -> None:
    assert connection_file_argument(["--debug"]) is None
    assert listen_early(["--debug"]) == {}


def _free_ports(count: int) -> list[int]:
    holders = [socket.create_server(("127.0.0.1", 0)) for _ in range(count)]
    ports = [holder.getsockname()[1] for holder in holders]
    for holder in holders:
        holder.close()
    return ports


def _connection_file(tmp_path: Path, **overrides: object) -> Path:
    shell, iopub, stdin, control, hb = _free_ports(5)
    info = {"transport": "tcp", "ip": "127.0.0.1", "shell_port": shell, "iopub_port": iopub,
            "stdin_port": stdin, "control_port": control, "hb_port": hb, **overrides}
    path = tmp_path / "kernel.json"
    path.write_text(json.dumps(info))
    return path


def test_the_four_message_ports_listen_and_the_heartbeat_does_not(tmp_path: Path) -> None:
    path = _connection_file(tmp_path)
    info = json.loads(path.read_text())
    listeners = listen_early(["-f", str(path)])
    try:
        assert sorted(listeners) == sorted(info[k] for k in
                                           ("shell_port", "iopub_port", "stdin_port",
                                            "control_port"))
        for port in listeners:
            socket.create_connection(("127.0.0.1", port), 1).close()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", info["hb_port"]), 1)
    finally:
        close_all(listeners)
    assert listeners == {}


def test_anything_unusual_leaves_the_binding_to_the_kernel(tmp_path: Path) -> None:
    assert listen_early(["-f", str(tmp_path / "missing.json")]) == {}
    assert listen_early(["-f", str(_connection_file(tmp_path, transport="ipc"))]) == {}
    path = _connection_file(tmp_path)
    taken = socket.create_server(("127.0.0.1", json.loads(path.read_text())["stdin_port"]))
    try:
        assert listen_early(["-f", str(path)]) == {}
    finally:
        taken.close()
    # Nothing was left listening by the attempt that failed half way.
    shell = json.loads(path.read_text())["shell_port"]
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", shell), 1)


def _adopting_app(ip: str, listeners: dict[int, socket.socket]) -> SandboxKernelApp:
    app = SandboxKernelApp()
    app.transport, app.ip = "tcp", ip
    app.early_listeners = listeners
    return app


@dataclass
class Early:
    shell: int
    listeners: dict[int, socket.socket]
    context: zmq.Context[zmq.Socket[bytes]]

    def socket(self, kind: int) -> zmq.Socket[bytes]:
        sock = self.context.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        return sock


@pytest.fixture
def early(tmp_path: Path) -> Iterator[Early]:
    path = _connection_file(tmp_path)
    listeners = listen_early(["-f", str(path)])
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        yield Early(json.loads(path.read_text())["shell_port"], listeners, context)
    finally:
        close_all(listeners)
        context.destroy(linger=0)


def test_the_kernels_socket_serves_a_connection_made_before_it_existed(early: Early) -> None:
    client = early.socket(zmq.DEALER)
    client.setsockopt(zmq.RECONNECT_IVL, 600_000)  # one try only: the early one
    client.connect(f"tcp://127.0.0.1:{early.shell}")
    client.send(b"hello")
    server = early.socket(zmq.ROUTER)
    app = _adopting_app("127.0.0.1", early.listeners)
    assert app._try_bind_socket(server, early.shell) == early.shell
    assert server.poll(5000), "the early connection was not served"
    assert server.recv_multipart()[-1] == b"hello"
    assert early.shell not in early.listeners


def test_a_listener_on_another_address_is_closed_not_adopted(early: Early) -> None:
    server = early.socket(zmq.ROUTER)
    _adopting_app("127.0.0.2", early.listeners)._try_bind_socket(server, early.shell)
    assert server.getsockopt(zmq.LAST_ENDPOINT) == f"tcp://127.0.0.2:{early.shell}".encode()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", early.shell), 1)
