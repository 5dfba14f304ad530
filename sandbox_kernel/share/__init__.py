"""The notebook's folder inside the VM: a FUSE server on the host that serves a confined,
mostly read-only view of one host folder to a guest that relays raw FUSE bytes."""
