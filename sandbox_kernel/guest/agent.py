"""The guest agent: PID 1 of the VM. Relays host requests to the worker and streams back.

It owns the two virtio ports and one worker process. The worker's events, its Python-level
output among them, come on its message pipe in the order it made them; output written to its
file descriptors 1 and 2 (a subprocess, C code) is chunked here and forwarded ahead of the
next event.
"""

import contextlib
import ctypes
import fcntl
import gc
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator

from sandbox_kernel import __version__
from sandbox_kernel import protocol as p
from sandbox_kernel.guest import shared_folder
from sandbox_kernel.guest.fd_output import StreamChunker, output_line
from sandbox_kernel.guest.feeder import RequestFeeder
from sandbox_kernel.guest.loopback import loopback_up
from sandbox_kernel.guest.ports import CommandPort, EventPort, find_port, port_if_any
from sandbox_kernel.guest.share_mount import Relay
from sandbox_kernel.guest.spawn import PATH, USER_HOME, WorkerProcess, spawn_worker
from sandbox_kernel.lines import LineSplitter

_RNDRESEEDCRNG = 0x5207
_RB_POWER_OFF = 0x4321FEDC
# What the agent holds of requests the worker has not read, besides its pipe's 1 MB.
_UNREAD_LIMIT = 2 * p.MAX_LINE_BYTES
# DAP messages and dumped cells for the worker's debug thread: while it is not reading, as many.
_DEBUG_UNREAD_LIMIT = 2 * p.MAX_LINE_BYTES

_libc = ctypes.CDLL(None, use_errno=True)


class WorkerSupervisor:
    """Runs the worker, the unprivileged Python process hosting the IPython shell: hands it
    requests, relays what it sends, and starts a fresh one when it dies."""

    def __init__(self, agent: "Agent", first: WorkerProcess | None = None) -> None:
        self.agent = agent
        self.inflight: deque[int] = deque()  # ids handed to the worker, answered in order
        self._kinds: dict[int, str] = {}  # their request types, for answering them if it dies
        self.last_id = 0
        self._lock = threading.Lock()
        self._swap = threading.Lock()  # held while the worker's pipes are replaced
        self.proc: subprocess.Popen[bytes] | None = None
        self.cwd = USER_HOME  # where a fresh worker starts: the shared folder, once mounted
        self.timezone = ""  # the host's, told by the reseed: a fresh worker starts in it
        self.preload: tuple[str, ...] = ()  # what the snapshot's worker had imported
        # Set once a snapshot is prepared: every VM restored from it would share this
        # process's hash seed and memory layout, so the first reseed replaces it.
        self.in_snapshot = False
        self.restarted = False  # a fresh process replaced the snapshot's
        # Only that one preloads: one started after a crash would import them beside the
        # user's next cell, competing with it for the CPU (under TCG, for seconds).
        self._preload_next = False
        self._swapped: threading.Event | None = None  # set by _died once a restart is done
        self._start(first)

    def _start(self, spawned: WorkerProcess | None = None) -> None:
        self._oom_kills_at_start = oom_kills()
        preload, self._preload_next = self.preload if self._preload_next else (), False
        spawned = spawned or spawn_worker(self.cwd, self.timezone, preload)
        self.proc = spawned.proc
        self.requests = RequestFeeder(spawned.req_w, _UNREAD_LIMIT)
        self.msg_r = spawned.msg_r
        self.out_r, self.err_r = spawned.out_r, spawned.err_r
        self.debug_requests = RequestFeeder(spawned.side_w, _DEBUG_UNREAD_LIMIT)
        threading.Thread(target=self._pump, args=(self.proc,), daemon=True).start()

    def submit(self, request_id: int | None, line: bytes, kind: str = "") -> None:
        """Hands a line to the worker, without waiting for it to read; ``request_id`` when the
        worker will answer it. A worker too far behind gets no more: the request is answered
        with an error (an input reply, which nothing waits on then, is dropped)."""
        with self._swap:
            if request_id is not None:
                with self._lock:  # before the line can reach the worker and be answered
                    self.inflight.append(request_id)
                    self._kinds[request_id] = kind
            if self.requests.put(line) or request_id is None:
                return
            with self._lock:
                self.inflight.remove(request_id)
                self._kinds.pop(request_id, None)
        self._answer_lost(request_id, kind, "WorkerBusy", (
            f"The Python process has not read the {_UNREAD_LIMIT // 2**20} MB of requests "
            "already sent to it (its code runs and does not come back for them), so this "
            "one was dropped. Interrupt the running cell, then try again."))

    def submit_debug(self, line: bytes) -> bool:
        """Hands a line to the worker's debug thread; False if it is not taking them."""
        with self._swap:
            return self.debug_requests.put(line)

    def restart(self) -> None:
        """Ends the idle worker and starts a freshly executed one in its place, which takes
        requests while it starts up: a new process has its own hash seed, address layout
        and random generators, which a restored one shares with every sibling."""
        assert self.proc is not None
        self.in_snapshot = False
        self.restarted = True
        self._preload_next = True
        self._swapped = swapped = threading.Event()
        self.end()
        swapped.wait(30.0)

    def end(self) -> None:
        """Kills the worker and all it started; _died() starts the next one."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)

    def end_running(self, request_id: int) -> None:
        """Ends the worker if ``request_id`` is still unanswered: its reply may have crossed
        the host's order, and the next cell must not die for it. One that waits behind a
        request the worker is stuck on (a comm handler that never returns) ends it too."""
        with self._lock:
            unanswered = request_id in self.inflight
        if unanswered:
            self.end()

    def interrupt(self) -> None:
        if self.proc is not None and self.inflight:
            try:
                os.killpg(self.proc.pid, signal.SIGINT)
            except ProcessLookupError:
                pass

    def _current_id(self) -> int:
        with self._lock:
            if self.inflight:
                self.last_id = self.inflight[0]
            return self.last_id

    def _pump(self, proc: "subprocess.Popen[bytes]") -> None:
        send_json = self.agent.evt.send_json

        def emit(name: str, text: str) -> None:
            send_json(output_line(self._current_id(), name, text))

        chunkers = {self.out_r: StreamChunker("stdout", emit),
                    self.err_r: StreamChunker("stderr", emit)}
        open_fds = {self.msg_r, self.out_r, self.err_r}
        lines = LineSplitter(p.MAX_LINE_BYTES)

        # Non-blocking throughout: draining stdout before forwarding an event may empty a
        # pipe that select() reported readable in the same round.
        for fd in open_fds:
            os.set_blocking(fd, False)

        def read(fd: int) -> bytes | None:
            try:
                return os.read(fd, 1 << 20)
            except BlockingIOError:
                return None

        def drain_outputs() -> None:
            for fd, chunker in chunkers.items():
                while fd in open_fds and (data := read(fd)):
                    chunker.feed(data)
                chunker.flush()

        # The worker's end, not its pipes': a child it started may hold them open for ever.
        exited = os.pidfd_open(proc.pid)
        while open_fds:
            waits = [d for c in chunkers.values() if (d := c.due_in()) is not None]
            readable, _, _ = select.select([*open_fds, exited], [], [],
                                           min(waits) if waits else None)
            if exited in readable:
                _drain_once(open_fds, chunkers, lines, self._forward)
                break
            for fd in readable:
                data = read(fd)
                if data is None:
                    continue
                if not data:
                    open_fds.discard(fd)
                elif fd in chunkers:
                    chunkers[fd].feed(data)
                else:
                    for line in lines.feed(data):
                        drain_outputs()
                        self._forward(line)
            for chunker in chunkers.values():
                if chunker.due_in() == 0.0:
                    chunker.flush()
        os.close(exited)
        for chunker in chunkers.values():
            chunker.flush(final=True)
        self._died(proc)

    def _forward(self, line: memoryview | None) -> None:
        """One line from the worker, newline included (None: one too long, dropped)."""
        if line is None:
            self.agent.send(p.AgentError(id=self._current_id(), error_type="BadWorkerMessage",
                                         message=f"a line over {p.MAX_LINE_BYTES} bytes"))
            return
        if p.line_type(line) == "output":
            # Most of the traffic, and nothing here depends on it: passed on as it is, to be
            # validated by the host like every line from the guest.
            self.agent.send_raw(line)
            return
        try:
            event = p.parse_event(bytes(line[:-1]))
        except p.MessageError as exc:
            self.agent.send(p.AgentError(id=self._current_id(), error_type="BadWorkerMessage",
                                         message=str(exc)[:2000]))
            return
        if isinstance(event, p.Hello):
            print(f"sandbox-agent: worker ready at {time.clock_gettime(time.CLOCK_BOOTTIME):.2f}s",
                  file=sys.stderr, flush=True)
            return
        self.agent.send_raw(line)
        if isinstance(event, p.FINAL_EVENTS):
            with self._lock:
                if self.inflight and self.inflight[0] == event.id:
                    self._kinds.pop(self.inflight.popleft(), None)

    def _died(self, proc: "subprocess.Popen[bytes]") -> None:
        code = proc.wait()
        # What the dead worker started goes with it (its session): it could still write to,
        # or wait on, a state that is gone.
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
        out_of_memory = code == -signal.SIGKILL and oom_kills() > self._oom_kills_at_start
        how = how_it_ended(code, out_of_memory)
        with self._swap:
            for fd in (self.msg_r, self.out_r, self.err_r):
                os.close(fd)
            self.requests.close()
            self.debug_requests.close()
            with self._lock:
                lost = [(rid, self._kinds.pop(rid, "")) for rid in self.inflight]
                self.inflight.clear()
            self._start()  # before reporting, so that the next request finds it
            swapped, self._swapped = self._swapped, None
        if swapped is not None:
            swapped.set()
        ended = (f"The Python process running this code ended ({how}); "
                 "a fresh one has been started and earlier variables are gone.")
        for request_id, kind in lost:
            self._answer_lost(request_id, kind, "WorkerDied", ended)

    def _answer_lost(self, request_id: int, kind: str, name: str, text: str) -> None:
        """Answers a request the worker will not: with an answer it may end with, since the
        host drops any other."""
        if kind == "execute":
            self.agent.send(p.ExecuteReply(id=request_id, status="error", ename=name,
                                           evalue=text))
        else:
            self.agent.send(p.AgentError(id=request_id, error_type=name, message=text))


_DRAIN_LIMIT = 64 * 2**20


def _drain_once(fds: set[int], chunkers: dict[int, StreamChunker], lines: LineSplitter,
                forward: Callable[[memoryview | None], None]) -> None:
    """What the pipes hold now that the worker has exited: its last words, bounded, since
    a child of it may go on writing."""
    budget = _DRAIN_LIMIT

    def drained(fd: int) -> Iterator[bytes]:
        nonlocal budget
        while budget > 0:
            try:
                data = os.read(fd, 1 << 20)
            except BlockingIOError:
                return
            if not data:
                return
            budget -= len(data)
            yield data

    for fd, chunker in chunkers.items():  # output first, as events flush it before them
        for data in drained(fd) if fd in fds else ():
            chunker.feed(data)
        chunker.flush()
    for fd in fds - chunkers.keys():
        for data in drained(fd):
            for line in lines.feed(data):
                forward(line)


def oom_kills() -> int:
    """How many processes the guest kernel's out-of-memory killer has ended so far."""
    try:
        with open("/proc/vmstat") as vmstat:
            for line in vmstat:
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def how_it_ended(code: int, out_of_memory: bool) -> str:
    if out_of_memory:
        return "it ran out of memory, and the VM's out-of-memory killer ended it"
    if code >= 0:
        return f"exit code {code}"
    try:
        return f"killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"killed by signal {-code}"


class Agent:
    def __init__(self, first: WorkerProcess | None = None) -> None:
        self.cmd = CommandPort(find_port(p.CMD_PORT), p.MAX_LINE_BYTES)
        self.evt = EventPort(find_port(p.EVT_PORT))
        self.worker = WorkerSupervisor(self, first)
        self.share: Relay | None = None
        self.wheelhouse: Relay | None = None
        # Found, and the FUSE mounts made, now: a snapshot holds them, and a restored VM's
        # MountShare, on the kernel's start path, is left with the overlay to lay.
        self.ports = {name: port_if_any(name) for name in (p.SHARE_PORT, p.WHEELHOUSE_PORT)}
        self.share_ahead, self.wheelhouse_ahead = shared_folder.premount(
            self.ports[p.SHARE_PORT], self.ports[p.WHEELHOUSE_PORT])
        self.readahead_pending: list[shared_folder.FuseMount] = []

    def port(self, name: str) -> str:
        return self.ports.get(name) or find_port(name)

    def send(self, event: p.Message) -> None:
        self.evt.send_json(p.to_json(event))

    def send_raw(self, line: bytes | memoryview) -> None:
        self.evt.send(line)

    def hello(self) -> None:
        self.send(p.Hello(id=0, agent_version=__version__))

    def serve(self) -> None:
        # The console log is what a failed boot leaves behind; say how far we got.
        print(f"sandbox-agent: serving at {time.clock_gettime(time.CLOCK_BOOTTIME):.2f}s",
              file=sys.stderr, flush=True)
        self.hello()
        for view in self.cmd.lines(on_reconnect=self.hello):
            if view is None:
                self.send(p.AgentError(id=0, error_type="LineTooLong",
                                       message=f"a request exceeded {p.MAX_LINE_BYTES} bytes"))
                continue
            line = bytes(view)
            if not line.strip():
                continue
            try:
                request = p.parse_request(line)
            except p.MessageError as exc:
                self.send(p.AgentError(id=0, error_type="BadRequest", message=str(exc)[:2000]))
                continue
            try:
                self.handle(request, line)
            except Exception as exc:  # the agent must outlive any one request
                self.send(p.AgentError(id=request.id, error_type=type(exc).__name__,
                                       message=str(exc)))

    def handle(self, request: p.Message, line: bytes) -> None:
        match request:
            case p.Ping(id=rid):
                self.send(p.Pong(id=rid, agent_version=__version__))
            case p.Interrupt(id=rid):
                self.worker.interrupt()
                self.send(p.Ack(id=rid))
            case p.EndWorker(id=rid, cell=cell):
                self.worker.end_running(cell)
                self.send(p.Ack(id=rid))
            case p.Reseed(id=rid, entropy=entropy, wall_time=wall_time, timezone=timezone,
                          fresh_python=fresh_python):
                self._reseed_kernel(entropy, wall_time)
                self.worker.timezone = timezone
                if self.worker.in_snapshot and fresh_python:
                    # After the kernel's reseed, which the new process's seeds come from.
                    self.worker.restart()
                # The host's start waits for this answer, not for the worker's part: the
                # worker reseeds its own generators before it reads the next request (its
                # pipe is ordered), so no cell runs before. Its own answer comes late, to a
                # request no longer in flight, and the host drops it. A fresh process needs no
                # reseed of its own.
                self.send(p.Ack(id=rid))
                if not self.worker.restarted:
                    self.worker.submit(None, line)
                _warm_cell_path()
            case p.SetClock(id=rid, wall_time=wall_time):
                time.clock_settime(time.CLOCK_REALTIME, wall_time)
                self.send(p.Ack(id=rid))
            case p.PrepareSnapshot(id=rid):
                p.build_all()
                gc.collect()
                gc.freeze()  # as the worker does: see its on_warm
                self._prepare_snapshot()
                self.worker.in_snapshot = True
                self.send(p.Ack(id=rid))
            case p.MountShare(id=rid, name=name, writable=writable, wheelhouse=wheelhouse):
                # Each once per VM, and each failure its own: the host asks again without it.
                made = self.readahead_pending  # raised once a MountShare is answered
                if name is not None and self.share is None:
                    try:
                        ahead, self.share_ahead = self.share_ahead, None
                        made.append(shared_folder.mount(self.port(p.SHARE_PORT), name,
                                                        writable, ahead))
                    except Exception as exc:
                        self.send(p.AgentError(id=rid, error_type=p.FOLDER_UNAVAILABLE,
                                               message=str(exc)[:2000]))
                        return
                    self.share = made[-1].relay
                    self.worker.cwd = shared_folder.guest_path(name)
                if wheelhouse and self.wheelhouse is None:
                    try:
                        ahead, self.wheelhouse_ahead = self.wheelhouse_ahead, None
                        made.append(shared_folder.mount_wheelhouse(
                            self.port(p.WHEELHOUSE_PORT), ahead))
                    except Exception as exc:
                        self.send(p.AgentError(id=rid, error_type=p.WHEELHOUSE_UNAVAILABLE,
                                               message=str(exc)[:2000]))
                        return
                    self.wheelhouse = made[-1].relay
                # The worker moves there before it reads the next request: as for the reseed,
                # the host need not wait for it.
                self.send(p.Ack(id=rid))
                self.worker.submit(None, line)
                if made:  # in a thread: the next request, the first cell, need not wait for it
                    threading.Thread(target=shared_folder.raise_readahead, args=tuple(made),
                                     daemon=True, name="readahead").start()
                    made.clear()
            case p.Warm(modules=modules):
                self.worker.preload = tuple(modules)  # for a fresh worker after a restore
                self.worker.submit(request.id, line, request.type)
            case p.InputReply():
                self.worker.submit(None, line)  # part of the execution already in flight
            case p.DebugStart():
                loopback_up()  # debugpy's adapter listens there: no loopback until debugging
                self.worker.submit(request.id, line, request.type)
            case p.DapSend() | p.DumpCell() | p.DebugInspect() | p.DebugStop():
                if not self.worker.submit_debug(line):
                    self.send(p.AgentError(id=request.id, error_type="DebuggerBusy",
                                           message="the worker's debugger is not reading"))
            case _:
                self.worker.submit(request.id, line, str(getattr(request, "type", "")))

    @staticmethod
    def _reseed_kernel(entropy: bytes, wall_time: float) -> None:
        # A restored snapshot resumes with the CRNG state and clock it was saved with.
        with open("/dev/urandom", "wb", buffering=0) as fh:
            fh.write(entropy)
            fcntl.ioctl(fh.fileno(), _RNDRESEEDCRNG)
        time.clock_settime(time.CLOCK_REALTIME, wall_time)

    @staticmethod
    def _prepare_snapshot() -> None:
        os.sync()
        for knob, value in (("drop_caches", "3"), ("compact_memory", "1")):
            try:
                with open(f"/proc/sys/vm/{knob}", "w") as fh:
                    fh.write(value)
            except OSError:
                pass


def _warm_cell_path() -> None:
    # QEMU's translated code is not part of a snapshot: validating a cell's messages for the
    # first time after a restore would translate the validators. The worker warms its side
    # meanwhile.
    p.parse_request(p.encode(p.Execute(id=1, code="0")))
    for event in (p.ExecuteResult(id=1, execution_count=1, data={"text/plain": "0"}),
                  p.ExecuteReply(id=1, status="ok"),
                  p.OutputChunk(id=1, name="stdout", text="0\n")):
        p.parse_event(p.encode(event))


def _reap_orphans() -> None:
    # As PID 1 every orphan becomes ours. Peek first (WNOWAIT) so that the worker's own
    # exit status is left for its Popen.
    while True:
        time.sleep(1.0)
        while True:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                break
            worker = AGENT.worker.proc if AGENT else None
            if info is None or (worker is not None and info.si_pid == worker.pid):
                break
            os.waitpid(info.si_pid, 0)


AGENT: Agent | None = None


def main(first: WorkerProcess | None = None) -> None:
    global AGENT
    os.environ.update(PATH=PATH, HOME="/root", LANG="C.UTF-8")
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGIO})  # taken by sigtimedwait()
    if os.getpid() == 1:
        threading.Thread(target=_reap_orphans, daemon=True).start()
    try:
        AGENT = Agent(first)
        AGENT.serve()
    except BaseException:
        import traceback

        traceback.print_exc()
        if os.getpid() == 1:
            os.sync()
            _libc.reboot(_RB_POWER_OFF)
        raise
