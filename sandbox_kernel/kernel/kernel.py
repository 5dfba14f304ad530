"""SandboxKernel: an ipykernel ``Kernel`` whose cells run in the sandbox VM.

The VM and its channel live on the shell's event loop (the main thread). Control messages
(interrupt, shutdown) arrive on ipykernel's control thread and are handed over thread-safely.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import signal
import threading
from collections import OrderedDict
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from ipykernel._version import kernel_protocol_version
from ipykernel.kernelbase import Kernel
from traitlets import Bool, Enum, Int, Unicode

from sandbox_kernel import __version__
from sandbox_kernel.errors import SandboxError, VMDied, VMStartError
from sandbox_kernel.kernel.stdin import ask_frontend
from sandbox_kernel.vm.config import Accel, VMConfig

if TYPE_CHECKING:
    from sandbox_kernel import protocol as p
    from sandbox_kernel.vm.early import EarlyVM
    from sandbox_kernel.vm.launch import start_vm
    from sandbox_kernel.vm.machine import SandboxVM

T = TypeVar("T")
_LATE_PARENTS = 8  # cells whose threads' output still finds its cell
_EXIT_AFTER_S = 0.1  # ipykernel stops its loop this long after `exit`
# The protocol's pydantic models and the VM manager take about 50 ms to import. That runs
# in a thread while the shell loop answers the frontend's handshake.


def _import_guest_modules() -> None:
    global p, start_vm  # bound on first use, see above
    from sandbox_kernel import protocol as p
    from sandbox_kernel.vm.launch import start_vm

    p.build_all()  # here, off the loop, rather than model by model in the first cell


class SandboxKernel(Kernel):
    implementation = "sandbox-kernel"
    implementation_version = __version__
    banner = f"Python 3 in a disposable QEMU VM (sandbox-kernel {__version__})"
    language_info = {  # noqa: RUF012  (ipykernel reads these class attributes)
        "name": "python",
        "version": "3.11",
        "mimetype": "text/x-python",
        "file_extension": ".py",
        "pygments_lexer": "ipython3",
        "codemirror_mode": {"name": "ipython", "version": 3},
        "nbconvert_exporter": "python",
    }
    help_links = [{"text": "Python", "url": "https://docs.python.org/3.11/"}]  # noqa: RUF012

    memory_mb = Int(1024, help="Guest memory in MiB").tag(config=True)
    cpus = Int(2, help="Guest vCPUs").tag(config=True)
    accel = Enum(["auto", "kvm", "tcg"], default_value=None, allow_none=True,
                 help="Accelerator; auto probes KVM once and falls back to TCG").tag(config=True)
    snapshots = Bool(None, allow_none=True,
                     help="Start from a memory snapshot when one matches").tag(config=True)
    image = Unicode("default", help="Guest image recipe").tag(config=True)

    early_vm: EarlyVM | None = None  # set by SandboxKernelApp.init_sockets

    @property
    def kernel_info(self) -> dict[str, Any]:
        # ipykernel's own would advertise its debugger and kernel subshells (and import
        # debugpy to decide): neither reaches into the VM.
        return {
            "protocol_version": kernel_protocol_version,
            "implementation": self.implementation,
            "implementation_version": self.implementation_version,
            "language_info": self.language_info,
            "banner": self.banner,
            "help_links": self.help_links,
            "supported_features": [],
        }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._next_count = 1
        self._vm: SandboxVM | None = None
        self._vm_task: asyncio.Task[SandboxVM] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running: int | None = None  # id of the guest request a cell waits on
        self._imported = asyncio.Event()
        self._exit_task: asyncio.Task[None] | None = None
        self._late_parents: OrderedDict[int, dict[str, Any]] = OrderedDict()  # by request id
        self._register_comm_handlers()

    # --- execution count follows the guest's IPython, as IPythonKernel's follows its shell ---
    @property
    def execution_count(self) -> int:
        return self._next_count

    @execution_count.setter
    def execution_count(self, value: int) -> None:
        pass

    # --- VM lifecycle ---------------------------------------------------------------------------
    def vm_config(self) -> VMConfig:
        config = VMConfig(image=self.image, memory_mb=self.memory_mb, cpus=self.cpus)
        if self.accel is not None:
            config.accel = cast(Accel, self.accel)  # the Enum trait has checked it
        if self.snapshots is not None:
            config.snapshots = self.snapshots
        return config

    def start(self) -> None:
        super().start()
        self._loop = asyncio.get_event_loop()
        self._ensure_vm()
        # A Ctrl-C sent to our process group interrupts the cell, as ipykernel's would.
        with contextlib.suppress(ValueError):
            signal.signal(signal.SIGINT, lambda *_: self._call_on_loop(self._interrupt_guest))

    def pre_handler_hook(self) -> None:
        # ipykernel makes SIGINT raise KeyboardInterrupt while a request is handled, to stop
        # user code running in its own process. Ours runs in the VM, and that exception would
        # stop the shell's event loop, and the kernel with it: keep the handler set in start().
        pass

    def post_handler_hook(self) -> None:
        pass

    async def _start_vm(self) -> SandboxVM:
        try:
            return await self._start_vm_unguarded()
        except (SandboxError, asyncio.CancelledError):
            raise
        except Exception as exc:
            # Every request waiting for the VM must get an answer; an unexpected failure
            # would otherwise reach ipykernel as an exception, which sends no reply at all.
            self.log.exception("the sandbox VM could not start")
            raise VMStartError(f"{type(exc).__name__}: {exc}") from exc

    async def _start_vm_unguarded(self) -> SandboxVM:
        try:
            await asyncio.to_thread(_import_guest_modules)
        finally:
            self._imported.set()  # never leave a handler waiting, even on a broken install
        config = self.vm_config()
        early, SandboxKernel.early_vm = SandboxKernel.early_vm, None
        vm = await early.take(config) if early is not None else None
        if vm is None:  # none started early, or with other settings
            vm = await start_vm(config)  # cancelled by a shutdown during its start
        self._vm = vm
        if vm.channel is not None:
            vm.channel.on_late_event = self._late_event
        self.log.info("sandbox VM ready in %.2f s (%s, %s)", vm.boot_seconds or 0,
                      vm.accel, vm.started_from)
        return vm

    def _ensure_vm(self) -> None:
        if self._vm_task is None:
            assert self._loop is not None
            self._vm_task = self._loop.create_task(self._start_vm())

    async def _guest_modules(self) -> None:
        """Waits until ``p`` and ``SandboxVM`` are imported."""
        self._ensure_vm()
        await self._imported.wait()

    async def _ready_vm(self) -> SandboxVM:
        self._ensure_vm()
        assert self._vm_task is not None
        vm = await asyncio.shield(self._vm_task)
        if vm.channel is None or vm.channel.closed is not None:
            raise VMDied(str(vm.channel.closed if vm.channel else "no channel"))
        return vm

    def _call_on_loop(self, fn: Any) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(fn)

    async def _on_main_loop(self, work: Awaitable[T]) -> T:
        """Runs ``work`` on the shell's loop, from whichever loop calls this."""
        assert self._loop is not None
        if asyncio.get_running_loop() is self._loop:
            return await work
        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(
            work, self._loop)  # type: ignore[arg-type]
        return await asyncio.wrap_future(future)

    def _interrupt_guest(self) -> None:
        if self._vm is not None and self._vm.channel is not None and self._running is not None:
            with contextlib.suppress(SandboxError):
                self._vm.interrupt()

    # --- helpers --------------------------------------------------------------------------------
    @property
    def _session(self) -> Any:
        assert self.session is not None, "the kernel app sets the session before any message"
        return self.session

    def _publish(self, msg_type: str, content: dict[str, Any],
                 parent: dict[str, Any] | None = None) -> None:
        self._session.send(self.iopub_socket, msg_type, content, self._parent_or_current(parent))

    def _parent_or_current(self, parent: dict[str, Any] | None) -> dict[str, Any]:
        return parent if parent is not None else self.get_parent("shell")

    def _failure(self, exc: BaseException, silent: bool = False) -> dict[str, Any]:
        name = type(exc).__name__
        text = str(exc)
        if not silent:
            self._publish("error", {"ename": name, "evalue": text, "traceback": [text]})
        return {"status": "error", "ename": name, "evalue": text, "traceback": [text],
                "execution_count": self._next_count, "payload": [], "user_expressions": {}}

    async def _ask(self, request: p.Message) -> p.Event | None:
        try:
            vm = await self._ready_vm()
            assert vm.channel is not None
            return await vm.channel.request(request.model_copy(
                update={"id": vm.channel.next_id()}))
        except SandboxError as exc:
            self.log.warning("sandbox request %s failed: %s", type(request).__name__, exc)
            return None

    # --- execute --------------------------------------------------------------------------------
    async def do_execute(self, code: str, silent: bool, store_history: bool = True,
                         user_expressions: dict[str, Any] | None = None,
                         allow_stdin: bool = False, *, cell_meta: Any = None,
                         cell_id: Any = None) -> dict[str, Any]:
        await self._guest_modules()
        try:
            vm = await self._ready_vm()
        except SandboxError as exc:
            return self._failure(exc, silent)
        assert vm.channel is not None
        parent = self.get_parent("shell")
        request = p.Execute(id=vm.channel.next_id(), code=code, silent=silent,
                            store_history=store_history, user_expressions=user_expressions or {},
                            allow_stdin=allow_stdin,
                            parent_msg_id=parent.get("header", {}).get("msg_id", ""))
        self._late_parents[request.id] = parent
        while len(self._late_parents) > _LATE_PARENTS:
            self._late_parents.popitem(last=False)
        ident = self._get_shell_context_var(self._shell_parent_ident)
        cancel_input = threading.Event()
        inputs: list[asyncio.Task[None]] = []
        self._running = request.id
        try:
            async for event in vm.channel.stream(request):
                if isinstance(event, p.InputRequest):
                    inputs.append(asyncio.create_task(self._relay_input(
                        vm, request.id, event, parent, ident, cancel_input)))
                elif isinstance(event, p.ExecuteReply):
                    return self._execute_reply(event)
                elif isinstance(event, p.AgentError):
                    return self._failure(SandboxError(f"{event.error_type}: {event.message}"))
                else:
                    self._forward(event)
        except SandboxError as exc:
            return self._failure(VMDied(str(exc)) if not isinstance(exc, VMDied) else exc)
        finally:
            self._running = None
            cancel_input.set()
            for task in inputs:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        return self._failure(VMDied("the guest sent no completion"))

    async def _relay_input(self, vm: SandboxVM, request_id: int, event: p.InputRequest,
                           parent: dict[str, Any], ident: Any, cancel: threading.Event) -> None:
        value = await asyncio.to_thread(ask_frontend, self, event.prompt, event.password,
                                        parent, ident, cancel)
        if value is not None and vm.channel is not None:
            vm.channel.send(p.InputReply(id=request_id, value=value))

    def _forward(self, event: p.Event, parent: dict[str, Any] | None = None) -> None:
        """Guest events become IOPub messages, re-signed with our session key; ``parent``:
        the request they belong to, when it is not the one being handled."""
        match event:
            case p.OutputChunk(name=name, text=text):
                self._publish("stream", {"name": name, "text": text}, parent)
            case p.DisplayData(data=data, metadata=md, transient=tr, update=update):
                self._publish("update_display_data" if update else "display_data",
                              {"data": data, "metadata": md, "transient": tr}, parent)
            case p.ExecuteResult(execution_count=count, data=data, metadata=md):
                self._publish("execute_result",
                              {"execution_count": count, "data": data, "metadata": md}, parent)
            case p.ClearOutput(wait=wait):
                self._publish("clear_output", {"wait": wait}, parent)
            case p.ErrorOutput(ename=ename, evalue=evalue, traceback=tb):
                self._publish("error", {"ename": ename, "evalue": evalue, "traceback": tb},
                              parent)
            case p.CommEvent():
                self._forward_comm(event, parent)
            case _:
                self.log.debug("ignoring guest event %s", type(event).__name__)

    def _late_event(self, event: p.Event) -> None:
        """An event of a request already answered: what a thread the cell started still
        prints or displays goes under that cell, as in ipykernel, and comm messages (a
        widget that a thread updates) go out whatever their request."""
        parent = self._late_parents.get(event.id)
        if parent is not None or isinstance(event, p.CommEvent):
            self._forward(event, parent)

    def _forward_comm(self, event: p.CommEvent, parent: dict[str, Any] | None = None) -> None:
        content: dict[str, Any] = {"comm_id": event.comm_id, "data": event.data}
        if event.kind == "comm_open":
            content["target_name"] = event.target_name or ""
            if event.target_module:
                content["target_module"] = event.target_module
        self._session.send(self.iopub_socket, event.kind, content,
                           self._parent_or_current(parent),
                           metadata=event.metadata, buffers=list(event.buffers) or None)

    def _execute_reply(self, done: p.ExecuteReply) -> dict[str, Any]:
        self._next_count = done.execution_count + 1
        if any(item.get("source") == "ask_exit" and not item.get("keepkernel")
               for item in done.payload):
            self._exit_task = asyncio.get_running_loop().create_task(self._exit_as_asked())
        if done.status == "ok":
            return {"status": "ok", "execution_count": done.execution_count,
                    "payload": done.payload, "user_expressions": done.user_expressions}
        # Frontends show an error by its traceback; one without any would show nothing.
        content = {"ename": done.ename, "evalue": done.evalue,
                   "traceback": done.traceback or [f"{done.ename}: {done.evalue}"]}
        if not done.error_shown:  # an interrupt before the cell started, a worker that died
            self._publish("error", content)
        # As ipykernel: payloads whatever the outcome (a cell can page, then fail).
        return {"status": "error", "execution_count": done.execution_count, **content,
                "payload": done.payload, "user_expressions": {}}

    async def _exit_as_asked(self) -> None:
        """``exit`` in a cell ends the kernel process, as in ipykernel; the frontend's restarter
        starts a new one, and so a new VM. The reply and the idle status go out first."""
        await asyncio.sleep(_EXIT_AFTER_S)
        await self.do_shutdown(False)
        self.io_loop.add_callback(self.io_loop.stop)  # the app then closes the other threads

    # --- introspection --------------------------------------------------------------------------
    async def do_complete(self, code: str, cursor_pos: int | None) -> dict[str, Any]:
        await self._guest_modules()
        pos = len(code) if cursor_pos is None else cursor_pos
        reply = await self._ask(p.Complete(id=0, code=code, cursor_pos=pos))
        if not isinstance(reply, p.CompleteReply):
            return {"status": "ok", "matches": [], "cursor_start": pos, "cursor_end": pos,
                    "metadata": {}}
        return {"status": "ok", "matches": reply.matches, "cursor_start": reply.cursor_start,
                "cursor_end": reply.cursor_end, "metadata": reply.metadata}

    async def do_inspect(self, code: str, cursor_pos: int, detail_level: int = 0,
                         omit_sections: Any = ()) -> dict[str, Any]:
        await self._guest_modules()
        reply = await self._ask(p.Inspect(id=0, code=code, cursor_pos=cursor_pos,
                                          detail_level=1 if detail_level else 0))
        if not isinstance(reply, p.InspectReply):
            return {"status": "ok", "found": False, "data": {}, "metadata": {}}
        return {"status": "ok", "found": reply.found, "data": reply.data,
                "metadata": reply.metadata}

    async def do_is_complete(self, code: str) -> dict[str, Any]:
        await self._guest_modules()
        reply = await self._ask(p.IsComplete(id=0, code=code))
        if not isinstance(reply, p.IsCompleteReply):
            return {"status": "unknown"}
        content: dict[str, Any] = {"status": reply.status}
        if reply.status == "incomplete":
            content["indent"] = reply.indent
        return content

    async def do_history(self, hist_access_type: str, output: bool, raw: bool,
                         session: int | None = None, start: int | None = None,
                         stop: int | None = None, n: int | None = None,
                         pattern: str | None = None, unique: bool = False) -> dict[str, Any]:
        await self._guest_modules()
        reply = await self._ask(p.History(
            id=0, hist_access_type=hist_access_type, output=output, raw=raw,  # type: ignore[arg-type]
            session=session or 0, start=start or 0, stop=stop, n=n, pattern=pattern or "*",
            unique=unique))
        history = reply.history if isinstance(reply, p.HistoryReply) else []
        return {"status": "ok", "history": [list(row) for row in history]}

    # --- comms ----------------------------------------------------------------------------------
    async def comm_info_request(self, stream: Any, ident: Any, parent: dict[str, Any]) -> None:
        await self._guest_modules()
        target = parent["content"].get("target_name")
        reply = await self._ask(p.CommInfo(id=0, target_name=target))
        comms = reply.comms if isinstance(reply, p.CommInfoReply) else {}
        self._session.send(stream, "comm_info_reply", {"status": "ok", "comms": comms}, parent,
                          ident)

    async def _comm_from_frontend(self, stream: Any, ident: Any, parent: dict[str, Any]) -> None:
        await self._guest_modules()
        content = parent["content"]
        kind = parent["header"]["msg_type"]
        fields: dict[str, Any] = {"comm_id": content.get("comm_id", ""),
                                  "data": content.get("data") or {},
                                  "metadata": parent.get("metadata") or {},
                                  "parent_msg_id": parent["header"].get("msg_id", "")}
        if kind == "comm_open":
            fields["target_name"] = content.get("target_name", "")
        if kind != "comm_close":
            fields["buffers"] = [bytes(b) for b in parent.get("buffers") or []]
        model = {"comm_open": p.CommOpen, "comm_msg": p.CommMsg, "comm_close": p.CommClose}[kind]
        try:
            vm = await self._ready_vm()
            assert vm.channel is not None
            async for event in vm.channel.stream(model(id=vm.channel.next_id(), **fields)):
                self._forward(event)  # a widget callback may print or display
        except SandboxError as exc:
            self.log.warning("comm message not delivered: %s", exc)

    def _register_comm_handlers(self) -> None:
        for kind in ("comm_open", "comm_msg", "comm_close"):
            self.shell_handlers[kind] = self._comm_from_frontend

    # --- control --------------------------------------------------------------------------------
    async def interrupt_request(self, stream: Any, ident: Any, parent: dict[str, Any]) -> None:
        self._call_on_loop(self._interrupt_guest)
        self._session.send(stream, "interrupt_reply", {"status": "ok"}, parent, ident=ident)

    async def do_shutdown(self, restart: bool) -> dict[str, Any]:
        # A restart is a new kernel process (jupyter_client starts one), so a new VM too.
        if self._vm_task is not None:  # also when still importing: it would start a VM later
            with contextlib.suppress(Exception):
                await self._on_main_loop(self._stop_vm())
        early, SandboxKernel.early_vm = SandboxKernel.early_vm, None
        if early is not None:  # shut down before the VM was taken over
            with contextlib.suppress(Exception):
                await early.discard()
        return {"status": "ok", "restart": restart}

    async def _stop_vm(self) -> None:
        if self._vm_task is not None and not self._vm_task.done():
            self._vm_task.cancel()
            with contextlib.suppress(BaseException):
                await self._vm_task
        if self._vm is not None:
            await self._vm.stop()
            self._vm = None
