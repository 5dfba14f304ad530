"""SandboxKernel: the ipykernel side of the sandbox, an ipykernel ``Kernel`` whose cells run in
the VM. The guest side, what each request becomes on the VM's channel and what the guest's
events become on IOPub, is kernel/bridge.py; how the VM is started, kernel/vm_start.py. Both
are loaded in a thread once the kernel starts (``_load_vm_side``).

The VM and its channel live on the shell's event loop (the main thread). Control messages
(interrupt, shutdown) arrive on ipykernel's control thread and are handed over thread-safely.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import inspect
import signal
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar

from ipykernel._version import kernel_protocol_version
from ipykernel.kernelbase import Kernel

from sandbox_kernel import __version__
from sandbox_kernel.errors import SandboxError, VMDied, VMStartError
from sandbox_kernel.kernel import requests
from sandbox_kernel.kernel.settings import VMSettings
from sandbox_kernel.kernel.stdin import ask_frontend
from sandbox_kernel.share.plan import SharePlan
from sandbox_kernel.vm.config import VMConfig

if TYPE_CHECKING:
    import logging

    from sandbox_kernel.kernel.bridge import Bridge
    from sandbox_kernel.kernel.debugger import Debugger
    from sandbox_kernel.kernel.vm_start import GuestVM, VMStarter
    from sandbox_kernel.vm.early import EarlyVM

T = TypeVar("T")
_EXIT_AFTER_S = 0.1  # ipykernel stops its loop this long after `exit`
# True in ipykernel's dispatch of a comm message that came while another request runs: it has a
# task, and so a context, of its own.
_BESIDE_A_REQUEST: ContextVar[bool] = ContextVar("sandbox_beside_a_request", default=False)


def _load_vm_side() -> tuple[type[Bridge],
                             Callable[[EarlyVM | None, logging.Logger], VMStarter]]:
    """The bridge and the default VM starter (host modules that talk to the VM). Runs in a
    thread: pydantic, the protocol's models and the VM manager are slow to import, and the
    kernel process must not import them before the early VM start has begun (kernel/app.py),
    nor on the shell loop, which answers the frontend's handshake meanwhile."""
    from sandbox_kernel.kernel.bridge import Bridge, build_models
    from sandbox_kernel.kernel.vm_start import default_starter

    build_models()
    return Bridge, default_starter


class SandboxKernel(Kernel, VMSettings):
    """The VM's settings are ``VMSettings``' traits (``c.SandboxKernel.memory_mb`` and so on)."""

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

    @property
    def kernel_info(self) -> dict[str, Any]:
        # As ipykernel's, but for kernel subshells, which do not reach into the VM; the
        # debugger is debugpy in the VM, which every image has.
        return {
            "protocol_version": kernel_protocol_version,
            "implementation": self.implementation,
            "implementation_version": self.implementation_version,
            "language_info": self.language_info,
            "banner": "\n".join([self.banner, self.share().describe(), *(
                [wheelhouse.describe()] if (wheelhouse := self.wheelhouse_plan()) else [])]),
            "help_links": self.help_links,
            "supported_features": ["debugger"],
        }

    def __init__(self, vm_starter: VMStarter | None = None, **kwargs: Any) -> None:
        """``vm_starter``: how the kernel gets its VM; by default the one the app started
        early (``early_vm``), or a new one (kernel/vm_start.py)."""
        super().__init__(**kwargs)
        self.early_vm: EarlyVM | None = None  # set by SandboxKernelApp.init_kernel
        # Told once the frontend has the kernel's first kernel_info answer (see vm/early.py).
        self.on_kernel_info: Callable[[], None] | None = None
        self._vm_starter = vm_starter
        self._next_count = 1
        self._vm: GuestVM | None = None
        self._bridge: Bridge | None = None
        self._guest_task: asyncio.Task[Bridge] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._exit_task: asyncio.Task[None] | None = None
        self._halt_task: asyncio.Task[None] | None = None  # stops a VM that stopped answering
        self._share_plan: SharePlan | None = None
        self._share_told = False
        self._comm_tasks: set[asyncio.Task[None]] = set()
        self._last_comm_task: asyncio.Task[None] | None = None
        self._debugger: Debugger | None = None
        self._register_comm_handlers()
        for handlers in (self.shell_handlers, self.control_handlers):
            for msg_type, handler in handlers.items():
                handlers[msg_type] = self._answering(msg_type, handler)

    def _answering(self, msg_type: str, handler: Callable[..., Any]) -> Callable[..., Any]:
        """``handler``, for requests whose content it can read; every other request of a
        type that has a reply gets an error reply instead of none."""
        async def answer(stream: Any, ident: Any, msg: dict[str, Any]) -> None:
            why = requests.problem(msg_type, msg.get("content"))
            if why is None:
                try:
                    result = handler(stream, ident, msg)
                    if inspect.isawaitable(result):
                        await result
                    return
                except Exception as exc:  # what ipykernel would log, and leave unanswered
                    self.log.exception("handling %s failed", msg_type)
                    why = f"{type(exc).__name__}: {exc}"
            if msg_type.endswith("_request"):
                self._session.send(stream, msg_type.removesuffix("_request") + "_reply",
                                   requests.error_reply(msg_type, why, self._next_count),
                                   msg, ident)
        return answer

    # --- execution count follows the guest's IPython, as IPythonKernel's follows its shell ---
    @property
    def execution_count(self) -> int:
        return self._next_count

    @execution_count.setter
    def execution_count(self, value: int) -> None:
        pass

    # --- VM lifecycle ---------------------------------------------------------------------------
    def vm_config(self) -> VMConfig:
        config = super().vm_config()
        config.share = self.share()
        return config

    def share(self) -> SharePlan:
        """What of the host's files the VM gets: decided once, from the folder the kernel was
        started in (Jupyter starts it in the notebook's)."""
        if self._share_plan is None:
            self._share_plan = self.share_plan()
        return self._share_plan

    def start(self) -> None:
        super().start()
        self._loop = asyncio.get_event_loop()
        self._ensure_guest()
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

    def _ensure_guest(self) -> None:
        if self._guest_task is None:
            assert self._loop is not None
            self._guest_task = self._loop.create_task(self._open_guest())

    async def _guest(self) -> Bridge:
        """The bridge to a running VM; raises ``SandboxError`` if there is none."""
        self._ensure_guest()
        assert self._guest_task is not None
        return await asyncio.shield(self._guest_task)

    async def _open_guest(self) -> Bridge:
        try:
            return await self._open_guest_unguarded()
        except (SandboxError, asyncio.CancelledError):
            raise
        except Exception as exc:
            # Every request waiting for the VM must get an answer; an unexpected failure
            # would otherwise reach ipykernel as an exception, which sends no reply at all.
            self.log.exception("the sandbox VM could not start")
            raise VMStartError(f"{type(exc).__name__}: {exc}") from exc

    async def _open_guest_unguarded(self) -> Bridge:
        bridge_class, default_starter = await asyncio.to_thread(_load_vm_side)
        starter = self._vm_starter or default_starter(self._take_early_vm(), self.log)
        vm = self._vm = await starter(self.vm_config())  # cancelled by a shutdown meanwhile
        if vm.channel is None:
            raise VMDied("the VM has no channel to its guest")
        vm.on_share_notice = lambda text: self._call_on_loop(functools.partial(self._notice, text))
        self._bridge = bridge_class(vm.channel, self._publish,
                                    functools.partial(ask_frontend, self), self.log,
                                    self.cell_limits(), self._halt_vm)
        return self._bridge

    def _halt_vm(self) -> None:
        """Stops a VM whose guest stopped answering now, not at shutdown: it may be spinning
        on the host's CPUs. Requests from now on are told so by its closed channel."""
        if self._vm is not None and self._halt_task is None:
            self._halt_task = asyncio.get_running_loop().create_task(self._vm.stop())

    def _take_early_vm(self) -> EarlyVM | None:
        early, self.early_vm = self.early_vm, None
        return early

    def _call_on_loop(self, fn: Callable[[], Any]) -> None:
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
        if self._bridge is not None:
            self._bridge.interrupt()

    # --- helpers --------------------------------------------------------------------------------
    @property
    def _session(self) -> Any:
        assert self.session is not None, "the kernel app sets the session before any message"
        return self.session

    def _publish(self, msg_type: str, content: dict[str, Any], parent: dict[str, Any], *,
                 metadata: dict[str, Any] | None = None, buffers: list[bytes] | None = None
                 ) -> None:
        self._session.send(self.iopub_socket, msg_type, content, parent, metadata=metadata,
                           buffers=buffers)

    def _notice(self, text: str) -> None:
        """What the sandbox tells the user (a shared folder's limit): on stderr, under the cell
        that caused it. Made here, never taken from the guest."""
        self._publish("stream", {"name": "stderr", "text": f"sandbox: {text}\n"},
                      self.get_parent("shell"))

    def _tell_share_once(self, vm: GuestVM) -> None:
        """A folder asked for and not shared surprises a user whose files then go missing:
        the first cell says why."""
        self._share_told = True
        plan = self.share()
        if self.shared_folder is not False and (plan.settings is None or vm.share_failure):
            why = vm.share_failure or plan.reason
            self._notice(f"no folder of the host is visible in this VM: {why}")
        wheelhouse = self.wheelhouse_plan()
        if wheelhouse is not None and (wheelhouse.settings is None or vm.wheelhouse_failure):
            self._notice(f"no wheelhouse: {vm.wheelhouse_failure or wheelhouse.reason}")

    def _failure(self, exc: BaseException, silent: bool = False) -> dict[str, Any]:
        name = type(exc).__name__
        text = str(exc)
        if not silent:
            self._publish("error", {"ename": name, "evalue": text, "traceback": [text]},
                          self.get_parent("shell"))
        return {"status": "error", "ename": name, "evalue": text, "traceback": [text],
                "execution_count": self._next_count, "payload": [], "user_expressions": {}}

    async def _from_guest(self, what: str, ask: Callable[[Bridge], Awaitable[T]],
                          fallback: T) -> T:
        """The guest's answer to ``ask``, or ``fallback`` when it has none: every request
        gets a reply, with or without a VM."""
        async def on_shell_loop() -> T:
            return await ask(await self._guest())

        try:
            return await self._on_main_loop(on_shell_loop())
        except SandboxError as exc:
            self.log.warning("sandbox request %s failed: %s", what, exc)
            return fallback

    # --- execute --------------------------------------------------------------------------------
    async def do_execute(self, code: str, silent: bool, store_history: bool = True,
                         user_expressions: dict[str, Any] | None = None,
                         allow_stdin: bool = False, *, cell_meta: Any = None,
                         cell_id: Any = None) -> dict[str, Any]:
        # The VM's channel lives on the shell's loop; a request on the control channel comes
        # on the control thread's.
        return await self._on_main_loop(self._execute(
            code, silent, store_history, user_expressions or {}, allow_stdin))

    async def _execute(self, code: str, silent: bool, store_history: bool,
                       user_expressions: dict[str, Any], allow_stdin: bool) -> dict[str, Any]:
        try:
            bridge = await self._guest()
        except SandboxError as exc:
            return self._failure(exc, silent)
        if not self._share_told and not silent and self._vm is not None:
            self._tell_share_once(self._vm)
        try:
            reply = await bridge.execute(
                code, silent=silent, store_history=store_history,
                user_expressions=user_expressions, allow_stdin=allow_stdin,
                parent=self.get_parent("shell"),
                ident=self._get_shell_context_var(self._shell_parent_ident))
        except SandboxError as exc:
            return self._failure(exc)
        self._next_count = reply["execution_count"] + 1
        if any(item.get("source") == "ask_exit" and not item.get("keepkernel")
               for item in reply["payload"]):
            self._exit_task = asyncio.get_running_loop().create_task(self._exit_as_asked())
        return reply

    async def _exit_as_asked(self) -> None:
        """``exit`` in a cell ends the kernel process, as in ipykernel; the frontend's restarter
        starts a new one, and so a new VM. The reply and the idle status go out first."""
        await asyncio.sleep(_EXIT_AFTER_S)
        await self.do_shutdown(False)
        self.io_loop.add_callback(self.io_loop.stop)  # the app then closes the other threads

    # --- introspection --------------------------------------------------------------------------
    async def do_complete(self, code: str, cursor_pos: int | None) -> dict[str, Any]:
        pos = len(code) if cursor_pos is None else cursor_pos
        return await self._from_guest(
            "complete", lambda bridge: bridge.complete(code, pos),
            {"status": "ok", "matches": [], "cursor_start": pos, "cursor_end": pos,
             "metadata": {}})

    async def do_inspect(self, code: str, cursor_pos: int, detail_level: int = 0,
                         omit_sections: Any = ()) -> dict[str, Any]:
        return await self._from_guest(
            "inspect", lambda bridge: bridge.inspect(code, cursor_pos, detail_level),
            {"status": "ok", "found": False, "data": {}, "metadata": {}})

    async def do_is_complete(self, code: str) -> dict[str, Any]:
        return await self._from_guest(
            "is_complete", lambda bridge: bridge.is_complete(code), {"status": "unknown"})

    async def do_history(self, hist_access_type: str, output: bool, raw: bool,
                         session: int | None = None, start: int | None = None,
                         stop: int | None = None, n: int | None = None,
                         pattern: str | None = None, unique: bool = False) -> dict[str, Any]:
        return await self._from_guest(
            "history", lambda bridge: bridge.history(hist_access_type, output, raw, session,
                                                     start, stop, n, pattern, unique),
            {"status": "ok", "history": []})

    async def kernel_info_request(self, stream: Any, ident: Any, parent: dict[str, Any]
                                  ) -> None:
        await super().kernel_info_request(stream, ident, parent)
        told, self.on_kernel_info = self.on_kernel_info, None
        if told is not None:
            told()

    # --- comms ----------------------------------------------------------------------------------
    async def comm_info_request(self, stream: Any, ident: Any, parent: dict[str, Any]) -> None:
        target = parent["content"].get("target_name")
        none: dict[str, dict[str, str]] = {}
        comms = await self._from_guest("comm_info", lambda bridge: bridge.comm_info(target), none)
        self._session.send(stream, "comm_info_reply", {"status": "ok", "comms": comms}, parent,
                           ident)

    async def dispatch_shell(self, msg: Any, /, subshell_id: str | None = None, *,
                             concurrent: bool = False) -> None:
        _BESIDE_A_REQUEST.set(concurrent)
        await super().dispatch_shell(msg, subshell_id=subshell_id, concurrent=concurrent)

    async def _comm_from_frontend(self, stream: Any, ident: Any, parent: dict[str, Any]) -> None:
        # Each waits for the one before, which waited for its own: order at a constant cost.
        last = self._last_comm_task
        earlier = [last] if last is not None and not last.done() else []
        if not _BESIDE_A_REQUEST.get():
            await self._forward_comm(parent, earlier)
            return
        # ipykernel puts the running request's parent back when this returns: waiting here
        # (for the VM, or for the guest's cell) would put it back over the next request's,
        # whose idle would go out under the old one, and Lab's cell would never end.
        task = asyncio.ensure_future(self._forward_comm(parent, earlier))
        self._comm_tasks.add(task)
        self._last_comm_task = task
        task.add_done_callback(self._comm_tasks.discard)

    async def _forward_comm(self, parent: dict[str, Any],
                            earlier: list[asyncio.Task[None]]) -> None:
        """Sends a comm message to the guest after those that came before it."""
        if earlier:
            await asyncio.wait(earlier)
        try:
            await self._from_guest(parent["header"]["msg_type"],
                                   lambda bridge: bridge.comm_from_frontend(parent), None)
        except Exception:  # a task's: nobody else would see it
            self.log.exception("forwarding %s failed", parent["header"]["msg_type"])

    def _register_comm_handlers(self) -> None:
        for kind in ("comm_open", "comm_msg", "comm_close"):
            self.shell_handlers[kind] = self._comm_from_frontend

    # --- the debugger ---------------------------------------------------------------------------
    async def do_debug_request(self, msg: Any) -> dict[str, Any]:
        return await self._on_main_loop(self._debug(msg))

    async def _debug(self, msg: Any) -> dict[str, Any]:
        if self._debugger is None:
            from sandbox_kernel.kernel.debugger import Debugger

            plan = self.share()
            shared = (str(plan.settings.folder), plan.guest_path) if plan.settings else None
            self._debugger = Debugger(self._publish_debug_event, self.log, shared=shared)
        debugger = self._debugger

        async def guest() -> Bridge:
            bridge = await self._guest()
            bridge.on_dap(debugger.from_guest)
            return bridge

        return await debugger.handle(guest, msg)

    def _publish_debug_event(self, event: dict[str, Any]) -> None:
        self._publish("debug_event", event, self.get_parent("control"))

    # --- what the sandbox does not offer -------------------------------------------------------
    async def _not_offered(self, stream: Any, ident: Any, parent: dict[str, Any]) -> None:
        """Subshells do not reach into the VM, and ipykernel's usage figures would describe
        this host process: an error reply, rather than ipykernel's silence or its host's
        figures."""
        msg_type = parent["header"]["msg_type"]
        why = f"the sandbox kernel does not offer {msg_type.removesuffix('_request')}"
        self._session.send(stream, msg_type.removesuffix("_request") + "_reply",
                           requests.error_reply(msg_type, why, self._next_count), parent, ident)

    # ipykernel names the first argument stream in some and socket in others.
    usage_request = _not_offered
    create_subshell_request = _not_offered  # type: ignore[assignment]
    delete_subshell_request = _not_offered  # type: ignore[assignment]
    list_subshell_request = _not_offered  # type: ignore[assignment]

    # --- control --------------------------------------------------------------------------------
    async def interrupt_request(self, stream: Any, ident: Any, parent: dict[str, Any]) -> None:
        self._call_on_loop(self._interrupt_guest)
        self._session.send(stream, "interrupt_reply", {"status": "ok"}, parent, ident=ident)

    async def do_shutdown(self, restart: bool) -> dict[str, Any]:
        # A restart is a new kernel process (jupyter_client starts one), so a new VM too.
        if self._guest_task is not None:  # also when still importing: it would start a VM later
            with contextlib.suppress(Exception):
                await self._on_main_loop(self._stop_vm())
        early = self._take_early_vm()
        if early is not None:  # shut down before the VM was taken over
            with contextlib.suppress(Exception):
                await early.discard()
        return {"status": "ok", "restart": restart}

    async def _stop_vm(self) -> None:
        if self._debugger is not None:
            self._debugger.close()
        for task in list(self._comm_tasks):
            task.cancel()
        if self._guest_task is not None and not self._guest_task.done():
            self._guest_task.cancel()
            with contextlib.suppress(BaseException):
                await self._guest_task
        self._bridge = None
        if self._halt_task is not None:
            with contextlib.suppress(Exception):
                await self._halt_task
        if self._vm is not None:
            await self._vm.stop()
            self._vm = None
