"""A restore's ports as socket pairs, and what is written to them before QEMU starts."""

import asyncio
import json
import socket
from pathlib import Path

from sandbox_kernel import protocol as p
from sandbox_kernel.channel import DualPortChannel, final_event
from sandbox_kernel.vm.migration import load_commands
from sandbox_kernel.vm.port_pairs import FIRST_RESEED_ID, LOADER, PORTS, PortPairs, first_reseed


def test_the_first_reseed_is_the_protocol_s_reseed() -> None:
    line = first_reseed(True, "CET-1CEST,M3.5.0,M10.5.0/3")
    request = p.parse_request(line)
    assert isinstance(request, p.Reseed)
    assert request.id == FIRST_RESEED_ID and len(request.entropy) == 64
    assert request.fresh_python and request.timezone == "CET-1CEST,M3.5.0,M10.5.0/3"
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert p.parse_request(p.encode(request)) == request
    assert p.parse_request(first_reseed(True, "")).entropy != request.entropy


def test_each_port_is_a_connected_pair_whose_host_end_is_taken_once() -> None:
    pairs = PortPairs.create()
    try:
        assert set(pairs.host) == set(pairs.guest) == {*PORTS, LOADER}
        fds = pairs.guest_fds()
        assert len(set(fds.values())) == len(fds)
        pairs.guest["cmd"].sendall(b"ping\n")
        cmd = pairs.take("cmd")
        assert cmd.recv(16) == b"ping\n"
        try:
            pairs.take("cmd")
        except KeyError:
            pass
        else:
            raise AssertionError("a host end was taken twice")
        pairs.close_guest_ends()
        assert cmd.recv(16) == b""  # the guest's side is gone: QEMU's alone, once it has it
        cmd.close()
    finally:
        pairs.close()
    assert not pairs.host and not pairs.guest


def test_the_monitor_loads_the_state_it_is_given_leaving_shared_ram_out() -> None:
    commands = [json.loads(line) for line in load_commands("fd:9").splitlines()]
    assert [c["execute"] for c in commands] == [
        "qmp_capabilities", "migrate-set-capabilities", "migrate-incoming"]
    assert commands[1]["arguments"]["capabilities"] == [
        {"capability": "x-ignore-shared", "state": True}]
    assert commands[2]["arguments"] == {"uri": "fd:9"}


async def test_the_answer_to_a_request_written_before_the_channel_is_not_lost() -> None:
    # The guest may answer the reseed waiting in its port before the VM manager has the
    # channel: the answer is in the socket when the channel starts reading.
    cmd_host, cmd_guest = socket.socketpair()
    evt_host, evt_guest = socket.socketpair()
    evt_guest.sendall(p.encode(p.Ack(id=FIRST_RESEED_ID)))
    channel = DualPortChannel(Path("cmd"), Path("evt"), first_id=FIRST_RESEED_ID + 1)
    answer = channel.expect(FIRST_RESEED_ID, "reseed")
    await channel.connect(sockets=(cmd_host, evt_host))
    try:
        await asyncio.sleep(0.05)  # the reader has dispatched the answer by now
        assert await asyncio.wait_for(final_event(answer), 5) == p.Ack(id=FIRST_RESEED_ID)
        assert channel.next_id() == FIRST_RESEED_ID + 1
    finally:
        await channel.close()
        cmd_guest.close()
        evt_guest.close()
