"""Jupyter kernel whose cells run inside a disposable QEMU virtual machine."""

__version__ = "0.1.0"
