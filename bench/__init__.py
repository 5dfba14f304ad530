"""Benchmarks: the sandbox kernel side by side with stock ipykernel (``python -m bench``)."""
