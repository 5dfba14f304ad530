"""A restored VM's serial ports, and a monitor, as socket pairs made before QEMU starts: QEMU
inherits one end of each, the VM manager keeps the other. Nothing is connected by path (no
socket file to race for, no peer to check), and what QEMU and the guest are to do first can be
written before they run: the monitor's commands that load the snapshot, and the guest's first
request, a reseed (``first_reseed``)."""

import base64
import json
import os
import socket
import time
from dataclasses import dataclass, field

# The chardev ids of QEMU's command line (vm/qemu.py): the serial ports, and a QMP monitor
# whose commands load the snapshot (vm/restore.py).
PORTS = ("cmd", "evt", "share", "wheels")
LOADER = "loader"
# The id of the reseed written before QEMU starts; the channel's own ids come after it.
FIRST_RESEED_ID = 1


@dataclass
class PortPairs:
    host: dict[str, socket.socket] = field(default_factory=dict)
    guest: dict[str, socket.socket] = field(default_factory=dict)

    @classmethod
    def create(cls) -> "PortPairs":
        pairs = cls()
        try:
            for name in (*PORTS, LOADER):
                pairs.host[name], pairs.guest[name] = socket.socketpair(
                    socket.AF_UNIX, socket.SOCK_STREAM)
        except BaseException:
            pairs.close()
            raise
        return pairs

    def guest_fds(self) -> dict[str, int]:
        return {name: sock.fileno() for name, sock in self.guest.items()}

    def close_guest_ends(self) -> None:
        """Once QEMU has them: the guest's side is then QEMU's alone, and the host's ends see
        QEMU's exit as the end of the connection."""
        for sock in self.guest.values():
            sock.close()
        self.guest.clear()

    def take(self, name: str) -> socket.socket:
        """The host's end of one port, once; KeyError after."""
        return self.host.pop(name)

    def close(self) -> None:
        self.close_guest_ends()
        for sock in self.host.values():
            sock.close()
        self.host.clear()


def first_reseed(fresh_python: bool, timezone: str) -> bytes:
    """The protocol's ``Reseed`` request, encoded without it: the launch comes before the
    protocol's models are imported (tests/unit/test_port_pairs.py checks the two agree). Its
    wall time is the launch's, some tens of ms old when the guest reads it: the VM manager
    sets the clock again once it has the channel (``SetClock``)."""
    return json.dumps({
        "id": FIRST_RESEED_ID, "type": "reseed",
        "entropy": base64.b64encode(os.urandom(64)).decode("ascii"),
        "wall_time": time.time(), "timezone": timezone, "fresh_python": fresh_python,
    }, separators=(",", ":")).encode() + b"\n"
