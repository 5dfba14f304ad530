"""``python -m sandbox_kernel -f {connection_file}``: what the kernelspec launches."""

from sandbox_kernel.kernel.app import SandboxKernelApp
from sandbox_kernel.kernel.kernel import SandboxKernel

if __name__ == "__main__":
    SandboxKernelApp.launch_instance(kernel_class=SandboxKernel)
