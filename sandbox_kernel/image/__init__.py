"""Builds the guest: kernel, initramfs and read-only root filesystem, cached by recipe hash."""
