"""A VM's device state saved to a file and loaded from one, by QEMU's migration over QMP.

The guest's RAM is a file of its own (see ``snapshot_store``), left out of the stream."""

import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path

from qemu.qmp import ConnectError, QMPClient

# Leaves RAM that lives in a shared file out of the migration stream. QEMU 7.2 has no other
# way (``mapped-ram`` came with 9.0); both sides of a migration must turn it on (a restore's
# command line does).
IGNORE_SHARED = {"capabilities": [{"capability": "x-ignore-shared", "state": True}]}
_POLL_S = 0.003
_CONNECT_POLL_S = 0.005


async def connect(qmp: QMPClient, path: Path, exited: Callable[[], bool],
                  attempts: int = 500) -> None:
    """Connects ``qmp`` to QEMU's socket, which can exist a moment before QEMU listens on it."""
    for _ in range(attempts):
        try:
            await qmp.connect(str(path))
            return
        except (ConnectError, OSError):
            if exited():
                raise
            await asyncio.sleep(_CONNECT_POLL_S)
    await qmp.connect(str(path))


def load_commands(uri: str) -> bytes:
    """QMP commands, one per line, that load the state QEMU was started to expect
    (``-incoming defer``) from ``uri``; written to a monitor before QEMU starts, they need no
    client. The guest runs once the state is loaded; QEMU exits if it cannot load it."""
    commands = [{"execute": "qmp_capabilities"},
                {"execute": "migrate-set-capabilities", "arguments": IGNORE_SHARED},
                {"execute": "migrate-incoming", "arguments": {"uri": uri}}]
    return b"".join(json.dumps(c).encode() + b"\n" for c in commands)


async def save_state(qmp: QMPClient, state: Path) -> str:
    """Writes the running guest's device state to ``state``; the migration's final status
    ("completed" when it worked: the guest is stopped then; it runs on otherwise). Not
    stopped first: the state records the run state it was saved in, and a restore runs the
    guest as soon as it has loaded a state saved running (a stopped one would wait for a
    ``cont``). Its last step stops the guest before the devices are saved, so the RAM file
    and the state still agree."""
    await qmp.execute("migrate-set-capabilities", IGNORE_SHARED)
    # QEMU writes the file itself through a passed descriptor. With ``exec:cat >``,
    # "completed" meant QEMU had filled the pipe, not that cat had written the file.
    out = os.open(state, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        qmp.send_fd_scm(out)
        await qmp.execute("getfd", {"fdname": "snapshot"})
    finally:
        os.close(out)
    await qmp.execute("migrate", {"uri": "fd:snapshot"})
    while (status := await _migration_status(qmp)) not in (  # noqa: ASYNC110
            "completed", "failed", "cancelled"):
        await asyncio.sleep(_POLL_S)
    return status


async def _migration_status(qmp: QMPClient) -> str:
    reply = await qmp.execute("query-migrate")
    return str(reply.get("status", "")) if isinstance(reply, dict) else ""
