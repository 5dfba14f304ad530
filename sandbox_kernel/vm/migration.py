"""Saving and loading a VM's device state over QMP: QEMU's migration, to and from a file.

The guest's RAM is a file of its own (see ``snapshot_store``), left out of the stream."""

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

from qemu.qmp import ConnectError, QMPClient

# Leaves RAM that lives in a shared file out of the migration stream. QEMU 7.2 has no other
# way (``mapped-ram`` came with 9.0); both sides of a migration must turn it on.
IGNORE_SHARED = {"capabilities": [{"capability": "x-ignore-shared", "state": True}]}
_POLL_S = 0.003
_CONNECT_POLL_S = 0.005
# The run states a loaded snapshot may leave QEMU in.
LOADED = ("paused", "postmigrate", "running", "prelaunch")


class NotLoaded(Exception):
    """QEMU could not load the snapshot's state."""


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


async def resume(qmp: QMPClient, uri: str) -> None:
    """Loads the state QEMU was started to expect and runs the guest; ``NotLoaded`` if the
    state could not be loaded."""
    status = await load_state(qmp, uri)
    if status not in LOADED:
        raise NotLoaded(f"loading the snapshot left the VM {status}")
    if status != "running":
        await qmp.execute("cont")


async def load_state(qmp: QMPClient, uri: str) -> str:
    """Loads the state QEMU was started to expect (``-incoming defer``); the run state after
    it: one of ``LOADED`` when it loaded."""
    await qmp.execute("migrate-set-capabilities", IGNORE_SHARED)
    await qmp.execute("migrate-incoming", {"uri": uri})
    # QMP has no "loaded" future to await; its status is the documented thing to poll.
    while (status := await _run_state(qmp)) == "inmigrate":  # noqa: ASYNC110
        await asyncio.sleep(_POLL_S)
    return status


async def save_state(qmp: QMPClient, state: Path) -> str:
    """Stops the guest and writes its device state to ``state``; the migration's final
    status ("completed" when it worked; the guest stays stopped either way)."""
    await qmp.execute("migrate-set-capabilities", IGNORE_SHARED)
    await qmp.execute("stop")
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


async def _run_state(qmp: QMPClient) -> str:
    reply = await qmp.execute("query-status")
    return str(reply["status"]) if isinstance(reply, dict) else ""


async def _migration_status(qmp: QMPClient) -> str:
    reply = await qmp.execute("query-migrate")
    return str(reply.get("status", "")) if isinstance(reply, dict) else ""
