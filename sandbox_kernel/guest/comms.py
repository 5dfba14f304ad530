"""Jupyter comms (ipywidgets) in the worker, carried over the channel."""

from typing import Any

import comm
from comm.base_comm import BaseComm, CommManager

from sandbox_kernel.guest import wire
from sandbox_kernel.guest.shell import Channel, jsonable


class Comms:
    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.manager = CommManager()
        bridge = self

        class ChannelComm(BaseComm):
            def publish_msg(self, msg_type: str, data: Any = None, metadata: Any = None,
                            buffers: Any = None, **keys: Any) -> None:
                bridge.channel.send(
                    "comm", bridge.channel.current_id, kind=msg_type, comm_id=self.comm_id,
                    target_name=keys.get("target_name"), target_module=keys.get("target_module"),
                    data=jsonable(data or {}), metadata=jsonable(metadata or {}),
                    buffers=wire.to_base64([bytes(b) for b in buffers or []]))

        comm.create_comm = ChannelComm
        comm.get_comm_manager = lambda: self.manager

    def from_host(self, kind: str, req: wire.Request) -> None:
        content: dict[str, Any] = {"comm_id": req.comm_id, "data": req.data}
        if kind == "comm_open":
            content["target_name"] = req.target_name
        msg = {"content": content, "metadata": req.metadata,
               "buffers": wire.from_base64(getattr(req, "buffers", [])),
               "header": {"msg_type": kind}}
        getattr(self.manager, kind)(None, None, msg)

    def info(self, target_name: str | None) -> dict[str, dict[str, str]]:
        return {cid: {"target_name": c.target_name} for cid, c in self.manager.comms.items()
                if target_name is None or c.target_name == target_name}


def install_comm_manager(channel: Channel) -> Comms:
    return Comms(channel)
