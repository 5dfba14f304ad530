"""The Jupyter side: SandboxKernel and its kernelspec."""
