"""Host-only test parts for SandboxKernel: everything real except the guest.

- ``ScriptedGuest``: the guest agent's end of the two ports, over Unix socketpairs to a real
  ``DualPortChannel``; it records each request and answers with what the test scripted for
  its type.
- ``FakeStarter``: the kernel's VM starter, handing out a ``FakeVM`` around that channel.
- ``KernelUnderTest``: SandboxKernel in a thread of its own, wired as IPKernelApp wires it: a
  real ``Session``, zmq sockets over inproc, ipykernel's IOPub, control and shell-channel threads.
- ``InprocClient``: jupyter_client's own BlockingKernelClient (what nbclient drives) over
  those inproc sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import socket
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import zmq
from ipykernel.control import ControlThread
from ipykernel.iostream import IOPubThread
from ipykernel.shellchannel import ShellChannelThread
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.session import Session
from tornado.ioloop import IOLoop
from zmq.eventloop.zmqstream import ZMQStream

from sandbox_kernel import protocol as p
from sandbox_kernel.channel import DualPortChannel
from sandbox_kernel.kernel.kernel import SandboxKernel
from sandbox_kernel.vm.config import VMConfig

TIMEOUT = 5.0  # for any one message: a test fails rather than hangs
Msg = dict[str, Any]


class GuestDies:
    """In a script's answer: the guest closes its ports there, as a VM that died would."""


DIES = GuestDies()
Script = Callable[[Any], Iterable[p.Message | GuestDies]]


class ScriptedGuest:
    def __init__(self) -> None:
        self.requests: queue.Queue[p.Message] = queue.Queue()
        self.seen: list[Any] = []
        self._scripts: dict[str, Script] = {}
        self._lock = threading.Lock()
        self._evt: socket.socket | None = None

    def on(self, kind: str, script: Script) -> None:
        """``script(request)`` gives the events that answer each request of type ``kind``."""
        self._scripts[kind] = script

    def last(self, kind: str) -> Any:
        return next(r for r in reversed(self.seen) if r.type == kind)  # type: ignore[attr-defined]

    def next_request(self, timeout: float = TIMEOUT) -> Any:
        return self.requests.get(timeout=timeout)

    def connect(self) -> tuple[socket.socket, socket.socket]:
        """The host's ends of the command and event ports; the guest serves its ends."""
        cmd_host, cmd_guest = socket.socketpair()
        evt_host, self._evt = socket.socketpair()
        threading.Thread(target=self._serve, args=(cmd_guest,), name="scripted-guest",
                         daemon=True).start()
        return cmd_host, evt_host

    def _serve(self, cmd: socket.socket) -> None:
        with cmd, cmd.makefile("rb") as lines:
            for line in lines:
                request = p.parse_request(line)
                self.seen.append(request)
                self.requests.put(request)
                self.say(*self._answer(request))
        self.say(DIES)  # the host has gone: so does the guest

    def _answer(self, request: Any) -> Iterable[p.Message | GuestDies]:
        script = self._scripts.get(request.type)
        if script is None:
            return [p.AgentError(id=request.id, error_type="NoScript",
                                 message=f"the test scripted no answer to {request.type}")]
        return script(request)

    def say(self, *events: p.Message | GuestDies) -> None:
        """Sends ``events`` on the event port (from a script, or from the test)."""
        with self._lock:
            for event in events:
                if isinstance(event, GuestDies):
                    self.die()
                elif self._evt is not None:
                    self._evt.sendall(p.encode(event))

    def die(self) -> None:
        if self._evt is not None:
            self._evt.close()
            self._evt = None


class FakeVM:
    def __init__(self, channel: DualPortChannel) -> None:
        self._channel = channel
        self.stopped = False
        self.share_failure = ""
        self.wheelhouse_failure = ""
        self.on_share_notice: Callable[[str], None] = lambda text: None

    @property
    def channel(self) -> DualPortChannel | None:
        return self._channel

    async def stop(self) -> None:
        self.stopped = True
        await self._channel.close()


class FakeStarter:
    """Starts a ``FakeVM`` on ``guest``; or fails with ``error``; ``gate``, when given, holds
    the start until it is set."""

    def __init__(self, guest: ScriptedGuest | None = None, error: BaseException | None = None,
                 gate: threading.Event | None = None) -> None:
        self.guest = guest or ScriptedGuest()
        self.error = error
        self.gate = gate
        self.configs: list[VMConfig] = []
        self.vms: list[FakeVM] = []
        self.cancelled = threading.Event()

    async def __call__(self, config: VMConfig) -> FakeVM:
        self.configs.append(config)
        try:
            # Polled: the test opens the gate from its own thread.
            while self.gate is not None and not self.gate.is_set():  # noqa: ASYNC110
                await asyncio.sleep(0.002)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        if self.error is not None:
            raise self.error
        channel = DualPortChannel(Path("cmd"), Path("evt"), peer=os.getpid())
        await channel.connect(sockets=self.guest.connect())
        self.vms.append(FakeVM(channel))
        return self.vms[-1]


class InprocClient(BlockingKernelClient):
    """jupyter_client's client on the inproc sockets a ``KernelUnderTest`` binds; its ``ip`` is
    the kernel's name."""

    def _make_url(self, channel: str) -> str:
        return f"inproc://{self.ip}-{channel}"


class KernelUnderTest:
    def __init__(self, starter: FakeStarter, **traits: Any) -> None:
        self.starter = starter
        self.traits = traits
        self.context: zmq.Context[Any] = zmq.Context()
        self.session = Session(key=uuid.uuid4().hex.encode())
        self.name = f"kernel-{uuid.uuid4().hex[:8]}"
        self.kernel: SandboxKernel | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._bound_all, self._go, self._ready = (threading.Event() for _ in range(3))
        self.thread = threading.Thread(target=self._run, name="kernel-under-test", daemon=True)
        self._threads: list[Any] = []

    def start(self) -> InprocClient:
        """Starts the kernel; returns a client whose IOPub subscription has been welcomed."""
        self.thread.start()
        assert self._bound_all.wait(TIMEOUT), "the kernel's sockets were not bound"
        client = InprocClient(context=self.context, session=self.session, ip=self.name)
        client.start_channels(hb=False)
        # Welcomed before the kernel publishes anything: a send on the IOPub socket can take
        # the subscription in unseen by the IOPub thread, which then never welcomes it.
        assert client.get_iopub_msg(timeout=TIMEOUT)["msg_type"] == "iopub_welcome"
        self._go.set()
        assert self._ready.wait(TIMEOUT), "the kernel did not start"
        self.client = client
        return client

    def _bound(self, kind: int, channel: str) -> zmq.Socket[Any]:
        sock: zmq.Socket[Any] = self.context.socket(kind)
        sock.linger = 0
        sock.bind(f"inproc://{self.name}-{channel}")
        return sock  # closed with the context

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        io_loop = IOLoop.current()
        self.kernel = self._build_kernel()
        self._bound_all.set()
        self._go.wait(TIMEOUT)
        self.kernel.start()
        self._ready.set()
        io_loop.start()  # until the kernel stops it (exit) or ``stop`` does
        io_loop.close()

    def _build_kernel(self) -> SandboxKernel:
        # As IPKernelApp.init_sockets, init_iopub and init_kernel do it.
        iopub = IOPubThread(self._bound(zmq.XPUB, "iopub"), session=self.session)
        iopub.start()
        control_thread = ControlThread(daemon=True)
        shell_thread = ShellChannelThread(self.context, daemon=True)
        shell_stream = ZMQStream(self._bound(zmq.ROUTER, "shell"), shell_thread.io_loop)
        shell_thread.shell_stream = shell_stream
        control_stream = ZMQStream(self._bound(zmq.ROUTER, "control"), control_thread.io_loop)
        control_thread.start()
        shell_thread.start()
        self._threads = [control_thread, shell_thread, iopub]
        return SandboxKernel(
            vm_starter=self.starter, session=self.session, control_stream=control_stream,
            shell_stream=shell_stream, control_thread=control_thread,
            shell_channel_thread=shell_thread, iopub_thread=iopub,
            iopub_socket=iopub.background_socket, stdin_socket=self._bound(zmq.ROUTER, "stdin"),
            log=logging.getLogger("kernel-under-test"), **self.traits)

    def on_loop(self, work: Any) -> Any:
        """Runs the coroutine ``work`` on the kernel's loop and returns its result."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(TIMEOUT)

    def stop(self) -> None:
        if self.thread.is_alive():
            assert self.kernel is not None and self.loop is not None
            self.on_loop(self.kernel.do_shutdown(False))
            self.loop.call_soon_threadsafe(self.kernel.io_loop.stop)
        self.thread.join(TIMEOUT)
        self.client.stop_channels()
        control_thread, shell_thread, iopub = self._threads
        for thread in (control_thread, shell_thread):
            thread.stop()
            thread.join(TIMEOUT)
        # Stopped by its loop rather than by ``stop()``, which would leave its pending task
        # for the garbage collector to complain about.
        iopub.io_loop.add_callback(iopub.io_loop.stop)
        iopub.thread.join(TIMEOUT)
        iopub.stop()
        self.context.destroy(linger=0)


# --- what a frontend does -------------------------------------------------------------------
def reply_to(client: InprocClient, msg_id: str, channel: str = "shell") -> Msg:
    get = client.get_control_msg if channel == "control" else client.get_shell_msg
    while True:
        msg: Msg = get(timeout=TIMEOUT)
        if msg["parent_header"].get("msg_id") == msg_id:
            return msg


def iopub_of(client: InprocClient, msg_id: str) -> list[Msg]:
    """The IOPub messages of request ``msg_id``, from its busy status to its idle one."""
    msgs: list[Msg] = []
    while True:
        msg: Msg = client.get_iopub_msg(timeout=TIMEOUT)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        msgs.append(msg)
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return msgs


def run(client: InprocClient, code: str, **options: Any) -> tuple[Msg, list[Msg]]:
    """The execute reply and the IOPub messages of one cell."""
    msg_id = client.execute(code, **options)
    return reply_to(client, msg_id), iopub_of(client, msg_id)


def kinds(msgs: list[Msg]) -> list[str]:
    """Message types, with the execution state of status messages: ``status:busy``."""
    return [f"status:{m['content']['execution_state']}" if m["msg_type"] == "status"
            else m["msg_type"] for m in msgs]


def control(client: InprocClient, msg_type: str, content: Msg | None = None) -> Msg:
    msg = client.session.msg(msg_type, content or {})
    client.control_channel.send(msg)
    return reply_to(client, msg["header"]["msg_id"], "control")


def answer(*events: Callable[[Any], p.Message] | p.Message | GuestDies) -> Script:
    """A script answering each request with ``events``; a callable among them is given the
    request (to use its id)."""
    return lambda request: [e(request) if callable(e) else e for e in events]


def done(count: int = 1, status: str = "ok", **fields: Any) -> Callable[[Any], p.ExecuteReply]:
    """The end of the cell that the request runs, as ``answer`` takes it."""
    return lambda request: p.ExecuteReply(id=request.id, status=status,  # type: ignore[arg-type]
                                          execution_count=count, **fields)


def out(text: str, name: str = "stdout") -> Callable[[Any], p.OutputChunk]:
    return lambda request: p.OutputChunk(id=request.id, name=name,  # type: ignore[arg-type]
                                         text=text)


@contextlib.contextmanager
def started(starter: FakeStarter, **traits: Any) -> Iterator[tuple[KernelUnderTest,
                                                                   InprocClient]]:
    kernel = KernelUnderTest(starter, **traits)
    client = kernel.start()
    try:
        yield kernel, client
    finally:
        kernel.stop()
