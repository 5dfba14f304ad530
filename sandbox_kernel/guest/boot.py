"""PID 1's entry point: start the worker first (it has the most to import), then the agent."""

import sys

sys.path.insert(0, "/opt/sandbox")


def main() -> None:
    import socket

    # Before any process can cache uname() (platform does).
    socket.sethostname("sandbox")
    from sandbox_kernel.guest.spawn import spawn_worker

    first = spawn_worker()
    from sandbox_kernel.guest.agent import main as agent_main

    agent_main(first)


if __name__ == "__main__":
    main()
