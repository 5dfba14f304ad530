"""``python -m sandbox_kernel -f {connection_file}``: what the kernelspec launches.

When a matching snapshot exists, its restore starts here, before ipykernel is even imported,
so that the VM comes up while the kernel process is still starting.
"""

import logging

from sandbox_kernel.vm.snapshot import EarlyRestore

try:
    early = EarlyRestore.begin()
except Exception:  # a failed head start must never stop the kernel; the normal path decides
    logging.getLogger(__name__).debug("early restore not started", exc_info=True)
    early = None

from sandbox_kernel.kernel.app import SandboxKernelApp
from sandbox_kernel.kernel.kernel import SandboxKernel

if __name__ == "__main__":
    SandboxKernel.early_restore = early
    SandboxKernelApp.launch_instance(kernel_class=SandboxKernel)
