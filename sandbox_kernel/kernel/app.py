"""The kernel application: ipykernel's, with an early VM start and a shutdown that cannot
stall."""

import logging
import socket
from typing import TYPE_CHECKING, Any, ClassVar

import zmq
from ipykernel.kernelapp import IPKernelApp
from jupyter_core.paths import jupyter_config_path
from traitlets.config import Application

from sandbox_kernel.kernel.early_listen import close_all
from sandbox_kernel.kernel.settings import CONFIG_FILE

if TYPE_CHECKING:
    from sandbox_kernel.vm.config import VMConfig
    from sandbox_kernel.vm.early import EarlyVM
    from sandbox_kernel.vm.restore import HeadStart

_CONTROL_JOIN_S = 2.0


class SandboxKernelApp(IPKernelApp):
    # Set by __main__: sockets already listening on our ports, by port (see early_listen).
    early_listeners: ClassVar[dict[int, socket.socket]] = {}
    # Set by __main__: a restore launched before the imports, and the settings it was
    # launched with (see early_launch).
    launched: ClassVar["tuple[VMConfig, HeadStart] | None"] = None
    _early_vm: "EarlyVM | None" = None

    def _try_bind_socket(self, s: zmq.Socket[Any], port: int) -> int:
        listener = self.early_listeners.pop(port, None) if self.transport == "tcp" else None
        if listener is not None:
            if listener.getsockname()[0] == self.ip:
                s.setsockopt(zmq.USE_FD, listener.detach())
            else:  # the command line chose another address than the connection file's
                listener.close()
        return int(super()._try_bind_socket(s, port))

    def load_config_file(self, *args: Any, **kwargs: Any) -> None:
        # IPython's profile (ipython_kernel_config.py) as ipykernel reads it, then our own file
        # in Jupyter's config folders, which ipykernel never reads: that is where users look.
        super().load_config_file(*args, **kwargs)
        Application.load_config_file(self, CONFIG_FILE, path=jupyter_config_path())

    def init_sockets(self) -> None:
        try:
            super().init_sockets()
        finally:
            close_all(self.early_listeners)
        # The VM's start goes on (or begins) in a thread as soon as the frontend can reach
        # us, while the rest of the kernel starts up and the frontend shakes hands. Only
        # the launch comes before ipykernel's import: the rest of the host's part is Python,
        # and begun there too (tried), the two threads only took turns at the GIL.
        from sandbox_kernel.kernel.early_launch import taken_over
        from sandbox_kernel.kernel.settings import VMSettings
        from sandbox_kernel.vm.early import EarlyVM

        launched, type(self).launched = self.launched, None
        try:
            # With the settings the kernel will ask for: config files and the command line
            # (a kernelspec's own) are read by now.
            config = VMSettings(config=self.config).vm_config()
            self._early_vm = EarlyVM.begin(config, taken_over(launched, config))
        except Exception:  # a failed head start must never stop the kernel
            logging.getLogger(__name__).debug("early VM start failed", exc_info=True)

    def init_pdb(self) -> None:
        """Nothing: ipykernel makes pdb interruptible for the cells it runs in its process
        (importing IPython's debugger, some 30 ms of the start); ours run in the VM."""

    def init_io(self) -> None:
        # ipykernel sends what its process writes to stdout and stderr to the frontend, since
        # user code runs there. Ours runs in the VM: this process writes only its own logs,
        # which quote what the guest sent when it sent something wrong, and must not reach a
        # notebook under no cell. They go to the process's stderr, as any server's logs.
        self.outstream_class = None  # type: ignore[assignment]  # the trait allows None
        self.capture_fd_output = False
        super().init_io()

    def init_kernel(self) -> None:
        super().init_kernel()
        # The kernel takes the VM over once it starts (see SandboxKernel._open_guest).
        if self._early_vm is not None:
            self.kernel.on_kernel_info = self._early_vm.frontend_answered
        self.kernel.early_vm, self._early_vm = self._early_vm, None

    def start(self) -> None:
        super().start()
        # The shell loop has stopped after a shutdown_request. The control thread's last act
        # is to flush stdout through the IOPub thread, which an atexit handler stops as the
        # process exits; when the flush loses that race it waits 10 s on a dead thread, and
        # jupyter_client sends SIGTERM after 2.5 s. That happened to about one shutdown in
        # two, and made restarts take 3.4 s instead of 1. Let the control thread finish first.
        control = self.control_thread
        if control is not None and control.is_alive():
            control.stop()
            control.join(_CONTROL_JOIN_S)
