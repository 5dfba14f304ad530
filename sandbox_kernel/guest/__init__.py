"""The guest side: runs inside the VM (agent as PID 1, worker as the unprivileged user)."""
