"""``python -m sandbox_kernel -f {connection_file}``: what the kernelspec launches."""

from ipykernel.kernelapp import IPKernelApp

from sandbox_kernel.kernel.kernel import SandboxKernel

if __name__ == "__main__":
    IPKernelApp.launch_instance(kernel_class=SandboxKernel)
