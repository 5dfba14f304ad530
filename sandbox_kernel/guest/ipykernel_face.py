"""The parts of ipykernel that libraries look at to tell that they run in a notebook kernel.

tqdm.autonotebook looks for ``ipykernel.zmqshell`` in ``sys.modules``; plotly and many others
test ``isinstance(get_ipython(), ipykernel.zmqshell.ZMQInteractiveShell)`` or the class's name;
``'IPKernelApp' in get_ipython().config`` is another common test. ipywidgets takes the parent
request from ``get_ipython().kernel.get_parent()`` and reads ``ipykernel.version_info``; some
code publishes itself with ``kernel.session.send(kernel.iopub_socket, msg_type, content)``.

Such a message becomes a ``published`` event of the current request; the host checks it and
builds the Jupyter message, so the guest picks neither channel, header nor parent.
"""

import sys
import uuid
from datetime import UTC, datetime
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any, Protocol

from sandbox_kernel.constants import GUEST_IOPUB_TYPES
from sandbox_kernel.guest import wire
from sandbox_kernel.guest.shell import Channel, jsonable

# The ipykernel whose API this imitates: ipywidgets uses ipykernel.comm below 6.18.
VERSION_INFO = (6, 29, 5)


class _Shell(Protocol):
    def get_parent(self) -> dict[str, Any]: ...


class IOPubSocket:
    """Stands for ipykernel's IOPub socket: what is sent to it, the host publishes."""

    def __repr__(self) -> str:
        return "<IOPub socket of the sandbox kernel>"


class Session:
    """``kernel.session``: builds messages as jupyter_client's Session does; ``send`` hands
    IOPub ones to the host, which signs them."""

    def __init__(self, channel: Channel, iopub_socket: IOPubSocket) -> None:
        self._channel = channel
        self._iopub_socket = iopub_socket
        self.session = str(uuid.uuid4())
        self.username = "user"

    def msg(self, msg_type: str, content: Any = None, parent: Any = None, header: Any = None,
            metadata: Any = None) -> dict[str, Any]:
        return {"header": header or {"msg_id": uuid.uuid4().hex, "msg_type": msg_type,
                                     "session": self.session, "username": self.username,
                                     "date": datetime.now(UTC), "version": "5.3"},
                "msg_id": uuid.uuid4().hex, "msg_type": msg_type,
                "parent_header": (parent or {}).get("header", parent or {}),
                "content": {} if content is None else content, "metadata": metadata or {},
                "tracker": None}

    def send(self, stream: Any, msg_or_type: Any, content: Any = None, parent: Any = None,
             ident: Any = None, buffers: Any = None, track: bool = False, header: Any = None,
             metadata: Any = None) -> dict[str, Any] | None:
        if isinstance(msg_or_type, dict):
            msg = msg_or_type
            msg_type = msg.get("msg_type") or msg.get("header", {}).get("msg_type", "")
            content, metadata = msg.get("content"), msg.get("metadata")
        else:
            msg_type = str(msg_or_type)
            msg = self.msg(msg_type, content, parent, header, metadata)
        # The host publishes on IOPub only, and only what a kernel publishes for a cell.
        if stream is not self._iopub_socket or msg_type not in GUEST_IOPUB_TYPES:
            return None
        self._channel.send("published", self._channel.current_id, msg_type=msg_type,
                           content=jsonable(content or {}), metadata=jsonable(metadata or {}),
                           buffers=wire.to_base64([bytes(b) for b in buffers or []]))
        return msg


class Kernel:
    """``get_ipython().kernel``: the parent request, the session and the IOPub socket."""

    def __init__(self, shell: _Shell, channel: Channel) -> None:
        self.shell = shell
        self.iopub_socket = IOPubSocket()
        self.session = Session(channel, self.iopub_socket)

    def get_parent(self, channel: str | None = None) -> dict[str, Any]:
        return self.shell.get_parent()

    @property
    def _parent_header(self) -> dict[str, Any]:  # ipykernel before 6
        return self.get_parent()

    @property
    def comm_manager(self) -> Any:
        import comm

        return comm.get_comm_manager()

    def send_response(self, stream: Any, msg_or_type: Any, content: Any = None,
                      ident: Any = None, buffers: Any = None, track: bool = False,
                      header: Any = None, metadata: Any = None, channel: Any = None
                      ) -> dict[str, Any] | None:
        return self.session.send(stream, msg_or_type, content, self.get_parent(), ident,
                                 buffers, track, header, metadata)


class IPythonKernel(Kernel):
    pass


def _module(name: str, package: bool = False, **attributes: Any) -> ModuleType:
    module = ModuleType(name)
    module.__spec__ = ModuleSpec(name, None, is_package=package)
    if package:
        module.__path__ = []
    module.__dict__.update(attributes)
    return module


def _named(cls: type, module: str, name: str) -> None:
    cls.__module__, cls.__name__, cls.__qualname__ = module, name, name


def install(shell_class: type) -> None:
    """Makes ``ipykernel`` importable, with ``shell_class`` as its ZMQInteractiveShell."""
    import comm

    _named(shell_class, "ipykernel.zmqshell", "ZMQInteractiveShell")
    _named(Kernel, "ipykernel.kernelbase", "Kernel")
    _named(IPythonKernel, "ipykernel.ipkernel", "IPythonKernel")
    submodules = {
        "zmqshell": _module("ipykernel.zmqshell", ZMQInteractiveShell=shell_class),
        "kernelbase": _module("ipykernel.kernelbase", Kernel=Kernel),
        "ipkernel": _module("ipykernel.ipkernel", IPythonKernel=IPythonKernel),
        # The comm package's classes, which the worker has made its channel's.
        "comm": _module("ipykernel.comm", Comm=comm.create_comm,
                        CommManager=type(comm.get_comm_manager())),
    }
    version = ".".join(map(str, VERSION_INFO))
    package = _module("ipykernel", package=True, version_info=VERSION_INFO,
                      __version__=version, **submodules)
    sys.modules["ipykernel"] = package
    for name, module in submodules.items():
        sys.modules[f"ipykernel.{name}"] = module
