"""IPython's InteractiveShell, publishing through the worker's channel instead of a terminal."""

import base64
import contextlib
import importlib
import shlex
import sys
import traceback
from collections.abc import Iterator
from typing import Any, Protocol, cast

from IPython.core import page, payloadpage
from IPython.core.autocall import ExitAutocall
from IPython.core.displayhook import DisplayHook
from IPython.core.displaypub import DisplayPublisher
from IPython.core.error import UsageError
from IPython.core.inputtransformer2 import TransformerManager
from IPython.core.interactiveshell import InteractiveShell
from IPython.core.magic import Magics, line_magic, magics_class
from traitlets import Any as AnyTrait
from traitlets import Type, default

from sandbox_kernel.guest import interrupts, packages, tracebacks, wire
from sandbox_kernel.guest.cell_names import IpykernelNamedCompiler
from sandbox_kernel.guest.plain import PlainResults
from sandbox_kernel.guest.transforms import QuickTransformerManager


class Channel(Protocol):
    current_id: int

    def send(self, kind: str, request_id: int, /, **fields: Any) -> None: ...


def jsonable(value: Any, mime: str = "") -> Any:
    """What ipykernel's json_clean does for MIME bundles: binary images become base64."""
    if isinstance(value, dict):
        return {str(k): jsonable(v, str(k) if not mime else mime) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, mime) for v in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        if mime.startswith("image/") and not mime.startswith("image/svg"):
            return base64.b64encode(raw).decode("ascii")
        return raw.decode("utf-8", "replace")
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value)


class _EncodeOnly:
    current_id = 0

    def send(self, kind: str, request_id: int, /, **fields: Any) -> None:
        wire.encode(kind, request_id, **fields)


class ChannelDisplayHook(DisplayHook):
    """Sends what IPython would print as ``Out[n]`` as an ``execute_result``."""

    channel = AnyTrait()

    plain_results: PlainResults | None = None

    def compute_format_data(self, result: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        if self.plain_results is None:
            self.plain_results = PlainResults(self.shell.display_formatter)  # type: ignore[union-attr]
        data = self.plain_results.format(result)
        if data is not None:
            return data, {}
        return super().compute_format_data(result)  # type: ignore[no-any-return]

    def quiet(self) -> bool:
        # IPython tokenizes the whole cell to find a trailing ';'. Without any ';' there is
        # none to find, and the pure-Python tokenizer is slow under TCG.
        history = self.shell.history_manager.input_hist_parsed  # type: ignore[union-attr]
        if history and ";" not in history[-1]:
            return False
        return super().quiet()  # type: ignore[no-any-return]

    def start_displayhook(self) -> None:
        super().start_displayhook()
        self._data: dict[str, Any] = {}
        self._metadata: dict[str, Any] = {}

    def write_output_prompt(self) -> None:
        pass

    def write_format_data(self, format_dict: dict[str, Any], md_dict: Any = None) -> None:
        self._data = format_dict
        self._metadata = md_dict or {}

    def finish_displayhook(self) -> None:
        self._is_active = False
        if self._data:  # send() flushes the output streams first, keeping the order
            self.channel.send("execute_result", self.channel.current_id,
                              execution_count=self.prompt_count, data=jsonable(self._data),
                              metadata=jsonable(self._metadata))


class ChannelDisplayPublisher(DisplayPublisher):
    channel = AnyTrait()

    def publish(self, data: dict[str, Any], metadata: dict[str, Any] | None = None,
                source: Any = None, *, transient: dict[str, Any] | None = None,
                update: bool = False, **kwargs: Any) -> None:
        self.channel.send("display_data", self.channel.current_id, data=jsonable(data),
                          metadata=jsonable(metadata or {}),
                          transient=jsonable(transient or {}), update=update)

    def clear_output(self, wait: bool = False) -> None:
        self.channel.send("clear_output", self.channel.current_id, wait=wait)


# matplotlib backends that draw into the notebook and need no event loop of their own: what
# ipykernel accepts as a "GUI" besides the real toolkits.
_LOOPLESS_GUIS = frozenset({None, "inline", "nbagg", "webagg", "notebook", "ipympl", "widget"})


def error_text(error: BaseException) -> str:
    try:
        return str(error)
    except Exception:  # an exception class whose __str__ fails: what Python prints then
        return "<exception str() failed>"


class SandboxExit(ExitAutocall):
    """``exit``/``quit``: ends the kernel, as in ipykernel, unless ``keep_kernel=True``."""

    def __call__(self, keep_kernel: bool = False) -> None:
        shell = cast(SandboxShell, self._ip)
        shell.keepkernel_on_exit = keep_kernel
        shell.ask_exit()


@magics_class
class SandboxMagics(Magics):
    @line_magic
    def sandbox(self, line: str) -> None:
        """Which folder of the host this VM sees, and with which limits."""
        print(self.shell.sandbox_description  # type: ignore[union-attr]
              or "No folder of the host is visible in this VM.")

    @line_magic
    def pip(self, line: str) -> None:
        """pip from the host's wheelhouse, if it shares one; without, what pip install, list
        and show would say about the sandbox image (there is no network)."""
        args = shlex.split(line)
        folder = packages.wheelhouse()
        try:
            if folder is None:
                print(packages.report(args, "%pip"))
                return
            command = packages.pip_command(args, folder, "%pip")
        except packages.NotInstallable as exc:
            raise UsageError(str(exc)) from None
        self.shell.system(shlex.join(command))  # type: ignore[union-attr]
        packages.use_user_site()
        importlib.invalidate_caches()


class SandboxShell(InteractiveShell):
    displayhook_class = Type(ChannelDisplayHook)
    compiler_class = Type(IpykernelNamedCompiler)
    display_pub_class = Type(ChannelDisplayPublisher)
    keepkernel_on_exit = False
    sandbox_description = ""  # what the host shares with this VM, for %sandbox

    def __init__(self, channel: Channel, **kwargs: Any) -> None:
        tracebacks.install()
        super().__init__(**kwargs)
        self.displayhook.channel = channel  # type: ignore[attr-defined]
        self.display_pub.channel = channel  # type: ignore[attr-defined]
        self.last_error: tuple[str, str, list[str]] | None = None
        self._parent: dict[str, Any] = {}
        self.kernel: Any = None  # ipykernel's face, which the worker gives it
        self.last_error_shown = False  # last_error went out as an error event
        # The pager (``obj?``) becomes a payload, as in ipykernel.
        self.set_hook("show_in_pager", page.as_hook(payloadpage.page), 99)
        self.register_magics(SandboxMagics)
        # What !pip or python -m pip installed is importable in the next cell.
        self.events.register("pre_run_cell", lambda *_: packages.use_user_site())
        # What IPython's apps, ipykernel's among them, load by default: %store.
        self.extension_manager.load_extension("storemagic")  # type: ignore[union-attr]

    def should_run_async(self, raw_cell: str, *, transformed_cell: str | None = None,
                         preprocessing_exc_tuple: Any = None) -> bool:
        # IPython compiles every cell a second time to look for a top-level await. A cell
        # with neither "await" nor "async" in it cannot have one.
        if transformed_cell is not None and "await" not in transformed_cell \
                and "async" not in transformed_cell:
            return False
        return super().should_run_async(
            raw_cell, transformed_cell=transformed_cell,
            preprocessing_exc_tuple=preprocessing_exc_tuple)

    def init_completer(self) -> None:
        # IPython's completer imports jedi, a large part of a cold start under TCG. It is made
        # on first use instead; a snapshot's warm-up makes it (see the worker's on_warm).
        self._completer: Any = None

    @property
    def Completer(self) -> Any:  # IPython's name
        if getattr(self, "_completer", None) is None:
            InteractiveShell.init_completer(self)
        return self._completer

    @Completer.setter
    def Completer(self, completer: Any) -> None:
        self._completer = completer

    # What ipykernel's shell has and ipywidgets' Output widget uses: the request being served,
    # whose msg_id the widget takes so that the frontend puts the output that follows in it.
    def get_parent(self) -> dict[str, Any]:
        return self._parent

    def set_parent(self, parent: dict[str, Any]) -> None:
        self._parent = parent

    @property
    def parent_header(self) -> dict[str, Any]:  # ipykernel's name for the same
        return self._parent

    @parent_header.setter
    def parent_header(self, parent: dict[str, Any]) -> None:
        self._parent = parent

    def run_cell_unseen(self, code: str) -> None:
        """Runs ``code`` as a cell whose result or traceback is encoded but sent nowhere, and
        which leaves no trace in ``_``, ``Out``, the history or the execution count."""
        hook = cast(ChannelDisplayHook, self.displayhook)
        outputs = self.history_manager.output_hist_reprs  # type: ignore[union-attr]
        before = dict(outputs)
        channel, cache_size = hook.channel, hook.cache_size
        hook.channel, hook.cache_size = _EncodeOnly(), 0  # cache_size 0: no _, __ or Out
        try:
            self.run_cell(code, store_history=False)
        finally:
            hook.channel, hook.cache_size = channel, cache_size
            outputs.clear()
            outputs.update(before)

    @contextlib.contextmanager
    def _tee(self, channel: str) -> Iterator[None]:
        # IPython 9 wraps sys.stdout's and sys.stderr's write() during every cell to keep a
        # copy of all that is printed in history_manager.outputs, which only %notebook reads
        # (it needs nbformat, which the image lacks). A Python-level call on every write is
        # dear under TCG, and the copy would hold every byte printed in the guest's memory.
        yield

    def _format_exception_for_storage(self, exception: BaseException, filename: Any = None,
                                      running_compiled_code: bool = False) -> dict[str, Any]:
        # IPython 9 formats a failing cell's traceback a second time, after showing it, to
        # keep it in history_manager.exceptions, which only %notebook reads. Under TCG that
        # doubles the time of every error; and it calls str() on the exception unguarded.
        return {"ename": type(exception).__name__, "evalue": error_text(exception),
                "traceback": []}

    def init_io(self) -> None:
        pass  # the worker has already put channel-backed streams on sys.stdout/stderr

    @default("input_transformer_manager")
    def _input_transformer_manager_default(self) -> TransformerManager:
        return QuickTransformerManager()

    @default("exiter")
    def _exiter_default(self) -> ExitAutocall:
        return SandboxExit(self)

    def enable_gui(self, gui: Any = None) -> None:
        if gui not in _LOOPLESS_GUIS:
            raise UsageError(f"The sandbox VM has no display, so no {gui} windows: use "
                             "%matplotlib inline, which is already the default.")
        self.active_eventloop = gui

    def _showtraceback(self, etype: type, evalue: BaseException, stb: list[str]) -> None:
        # Sent now, in order with the output, as ipykernel does: IPython also shows tracebacks
        # that do not end the cell (a formatter's, a callback's), and those must not be lost.
        text = error_text(evalue)
        self.last_error = (etype.__name__, text, stb)
        channel = self.displayhook.channel  # type: ignore[attr-defined]
        channel.send("error", channel.current_id, ename=etype.__name__, evalue=text,
                     traceback=stb)
        self.last_error_shown = True

    def showtraceback(self, exc_tuple: Any = None, *args: Any, **kwargs: Any) -> None:
        with contextlib.suppress(ValueError):  # no exception: IPython says so
            interrupts.drop_worker_frames(self._get_exc_info(exc_tuple)[1])
        shown = self.last_error
        super().showtraceback(exc_tuple, *args, **kwargs)
        if self.last_error is shown:
            self._printed_instead(exc_tuple)

    def _printed_instead(self, exc_tuple: Any) -> None:
        # IPython printed this one to stderr in Python's own format (an exception group, or a
        # traceback it failed to format); ipykernel publishes no error output for it either.
        try:
            etype, value, tb = self._get_exc_info(exc_tuple)
        except ValueError:
            return
        lines = "".join(traceback.format_exception(etype, value, tb)).rstrip("\n").split("\n")
        self.last_error, self.last_error_shown = (etype.__name__, error_text(value), lines), True

    def show_usage_error(self, exc: BaseException) -> None:
        super().show_usage_error(exc)
        # Printed to stderr instead of a traceback; ipykernel publishes no error output for it.
        self.last_error, self.last_error_shown = ("UsageError", error_text(exc), []), True

    def set_next_input(self, text: str, replace: bool = False) -> None:
        self.payload_manager.write_payload(  # type: ignore[union-attr]
            {"source": "set_next_input", "text": text, "replace": replace})

    def ask_exit(self) -> None:
        self.payload_manager.write_payload(  # type: ignore[union-attr]
            {"source": "ask_exit", "keepkernel": self.keepkernel_on_exit})

    def system_raw(self, cmd: str) -> None:
        sys.stdout.flush()  # keep Python's buffered output ahead of the command's
        sys.stderr.flush()
        super().system_raw(cmd)
