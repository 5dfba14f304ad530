"""The notebook's folder inside the VM: a FUSE server on the host that serves a confined,
mostly read-only view of one host folder to a guest that only relays raw FUSE bytes.

Host: ``policy.decide(folder, home)``, then ``ShareTransport(sock, FuseServer(settings,
notify)).start()`` on the port's socket. Guest (``sandbox_kernel.guest.share_mount``):
``open_fuse``, ``mount_fuse``, ``Relay(fuse_fd, port_fd).start()``, ``set_readahead``; then
``mount_overlay`` over it so the VM's writes stay in a tmpfs, and ``bind`` each writable
subfolder of the FUSE mount over the overlay's so that its writes reach the host.
"""
