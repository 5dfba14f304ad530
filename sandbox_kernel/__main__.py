"""``python -m sandbox_kernel -f {connection_file}``: what the kernelspec launches."""

import sys

if __name__ == "__main__":
    # Before any heavy import: the frontend may connect from now on (see early_listen).
    from sandbox_kernel.kernel.early_listen import listen_early

    listeners = listen_early(sys.argv[1:])
    # The restored guest then gets going while the rest is imported (see early_launch).
    from sandbox_kernel.kernel.early_launch import launch_before_imports

    launched = launch_before_imports(sys.argv[1:])

    from sandbox_kernel.kernel.app import SandboxKernelApp
    from sandbox_kernel.kernel.kernel import SandboxKernel

    SandboxKernelApp.early_listeners = listeners
    SandboxKernelApp.launched = launched
    SandboxKernelApp.launch_instance(kernel_class=SandboxKernel)
