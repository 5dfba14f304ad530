"""Every kind of event the guest sends, as the real agent and worker make it, is a valid
protocol model: the worker writes its events without pydantic, so only this shows that its
lines and the host's models agree."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from sandbox_kernel import protocol as p
from sandbox_kernel.vm import SandboxVM, VMConfig, start_vm

pytestmark = [pytest.mark.vm, pytest.mark.timeout(180), pytest.mark.asyncio(loop_scope="module")]

_CELLS = [
    "import sys\nprint('out')\nprint('err', file=sys.stderr)",
    "from IPython.display import clear_output, display\n"
    "h = display('a', display_id=True)\nh.update('b')\nclear_output(wait=True)\n6 * 7",
    "1 / 0",
    "from comm import create_comm\nc = create_comm(target_name='t', data={'a': 1})\n"
    "c.send({'b': [2]}, buffers=[b'\\x00'])\nc.close()",
    # What a library publishes itself, through ipykernel's session.
    "k = get_ipython().kernel\n"
    "k.session.send(k.iopub_socket, 'stream', {'name': 'stdout', 'text': 'x'},"
    " parent=k.get_parent())",
]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def fresh_vm() -> AsyncIterator[SandboxVM]:
    vm = await start_vm(VMConfig(boot_timeout_s=45, snapshots=False))
    yield vm
    await vm.stop()


async def _kinds(vm: SandboxVM, request: p.Message, answer: str | None = None) -> set[str]:
    assert vm.channel is not None
    kinds = set()
    async for event in vm.channel.stream(request):
        kinds.add(event.type)
        if isinstance(event, p.InputRequest) and answer is not None:
            vm.channel.send(p.InputReply(id=request.id, value=answer))
    return kinds


async def test_every_event_type_arrives_valid(fresh_vm: SandboxVM) -> None:
    vm, channel = fresh_vm, fresh_vm.channel
    assert channel is not None
    seen: set[str] = set()
    for code in _CELLS:
        seen |= await _kinds(vm, p.Execute(id=channel.next_id(), code=code))
    seen |= await _kinds(vm, p.Execute(id=channel.next_id(), code="input('?')",
                                       allow_stdin=True), answer="yes")
    for request in (p.Ping(id=0), p.Complete(id=0, code="impo", cursor_pos=4),
                    p.Inspect(id=0, code="len", cursor_pos=3), p.IsComplete(id=0, code="if x:"),
                    p.History(id=0, hist_access_type="tail", n=3), p.CommInfo(id=0),
                    p.Interrupt(id=0)):
        seen |= await _kinds(vm, request.model_copy(update={"id": channel.next_id()}))
    # The debugger's: debugpy started, the variable explorer, and its adapter's answer.
    from_debugpy: list[Any] = []
    channel.on_dap = from_debugpy.append
    seen |= await _kinds(vm, p.DebugStart(id=channel.next_id()))
    seen |= await _kinds(vm, p.DebugInspect(id=channel.next_id(), what="variables"))
    channel.send(p.DapSend(id=channel.next_id(), message={
        "type": "request", "seq": 1, "command": "initialize", "arguments": {"adapterID": "x"}}))
    for _ in range(600):
        if from_debugpy:
            seen.add("dap_message")
            break
        await asyncio.sleep(0.1)
    channel._outbox.put_nowait(b"not a request\n")  # the agent answers with an agent_error
    await asyncio.sleep(0.5)
    while not channel.unsolicited.empty():
        seen.add(channel.unsolicited.get_nowait().type)  # hello, and that agent_error
    assert channel.protocol_errors == []
    assert seen == set(p.EVENTS)
