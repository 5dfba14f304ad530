"""The kernel application: ipykernel's, with a shutdown that cannot stall."""

from ipykernel.kernelapp import IPKernelApp

_CONTROL_JOIN_S = 2.0


class SandboxKernelApp(IPKernelApp):
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
