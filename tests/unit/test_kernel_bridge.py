"""The kernel's guest side without ipykernel: the bridge on a real channel to a scripted guest,
publishing into a list."""

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from sandbox_kernel import protocol as p
from sandbox_kernel.channel import DualPortChannel
from sandbox_kernel.errors import VMDied
from sandbox_kernel.kernel import cell_limits
from sandbox_kernel.kernel.bridge import Bridge
from sandbox_kernel.kernel.cell_limits import CellLimits
from tests.unit.kernel_fakes import ScriptedGuest, answer, done, out

pytestmark = [pytest.mark.timeout(30), pytest.mark.asyncio(loop_scope="function")]
PARENT = {"header": {"msg_id": "cell-1", "msg_type": "execute_request"}}


class Published(list[tuple[str, dict[str, Any], dict[str, Any], Any, Any]]):
    def __call__(self, msg_type: str, content: dict[str, Any], parent: dict[str, Any], *,
                 metadata: dict[str, Any] | None = None, buffers: list[bytes] | None = None
                 ) -> None:
        self.append((msg_type, content, parent, metadata, buffers))


def _never_asked(*_: object) -> str:
    raise AssertionError("no input was expected")


@pytest_asyncio.fixture(loop_scope="function")
async def wired() -> AsyncIterator[tuple[ScriptedGuest, DualPortChannel]]:
    guest = ScriptedGuest()
    channel = DualPortChannel(Path("cmd"), Path("evt"), peer=os.getpid())
    await channel.connect(sockets=guest.connect())
    yield guest, channel
    await channel.close()


@pytest.mark.parametrize(("event", "expected"), [
    (p.OutputChunk(id=1, name="stderr", text="x"),
     ("stream", {"name": "stderr", "text": "x"}, None, None)),
    (p.DisplayData(id=1, data={"text/plain": 1}, update=True),
     ("update_display_data", {"data": {"text/plain": 1}, "metadata": {}, "transient": {}},
      None, None)),
    (p.CommEvent(id=1, kind="comm_open", comm_id="c", metadata={"v": 2}, buffers=[b"b"]),
     ("comm_open", {"comm_id": "c", "data": {}, "target_name": ""}, {"v": 2}, [b"b"])),
    (p.Ack(id=1), None),  # nothing a frontend is told about
])
async def test_events_become_iopub_messages_under_the_given_parent(
        wired: tuple[ScriptedGuest, DualPortChannel], event: p.Message,
        expected: tuple[Any, ...] | None) -> None:
    published = Published()
    Bridge(wired[1], published, _never_asked).forward(event, PARENT)  # type: ignore[arg-type]
    if expected is None:
        assert published == []
    else:
        msg_type, content, metadata, buffers = expected
        assert published == [(msg_type, content, PARENT, metadata, buffers)]


async def test_a_cell_ends_with_its_reply_content(
        wired: tuple[ScriptedGuest, DualPortChannel]) -> None:
    guest, channel = wired
    guest.on("execute", answer(done(7, payload=[{"source": "page"}])))
    published = Published()
    reply = await Bridge(channel, published, _never_asked).execute(
        "x", silent=False, store_history=True, user_expressions={}, allow_stdin=False,
        parent=PARENT, ident=[b"frontend"])
    assert reply == {"status": "ok", "execution_count": 7, "payload": [{"source": "page"}],
                     "user_expressions": {}}
    assert guest.next_request().parent_msg_id == "cell-1"


async def test_a_closed_channel_is_a_dead_vm(
        wired: tuple[ScriptedGuest, DualPortChannel]) -> None:
    bridge = Bridge(wired[1], Published(), _never_asked)
    await wired[1].close()
    with pytest.raises(VMDied, match="Restart the kernel"):
        await bridge.complete("x", 1)


async def test_an_answer_of_another_kind_is_dropped_and_the_request_s_own_awaited(
        wired: tuple[ScriptedGuest, DualPortChannel]) -> None:
    # What the cell's code can forge: an answer that would end another request early.
    guest, channel = wired
    guest.on("is_complete", answer(lambda r: p.Ack(id=r.id),
                                   lambda r: p.ExecuteReply(id=r.id, status="ok"),
                                   lambda r: p.IsCompleteReply(id=r.id, status="complete")))
    reply = await Bridge(channel, Published(), _never_asked).is_complete("x")
    assert reply == {"status": "complete"}
    assert [e.split(":")[0] for e in channel.protocol_errors] == [
        "a ack cannot answer request 1", "a execute_reply cannot answer request 1"]


async def _run(bridge: Bridge) -> dict[str, Any]:
    return await bridge.execute("x", silent=False, store_history=True, user_expressions={},
                                allow_stdin=False, parent=PARENT, ident=[b"frontend"])


def _notices(published: Published) -> list[str]:
    return [content["text"] for kind, content, *_ in published
            if kind == "stream" and content["text"].startswith("sandbox: ")]


async def test_output_past_the_cap_is_dropped_with_one_note_naming_the_setting(
        wired: tuple[ScriptedGuest, DualPortChannel]) -> None:
    guest, channel = wired
    chunk = "x" * 600_000
    guest.on("execute", answer(out(chunk), out(chunk), out(chunk), done(1)))
    published = Published()
    bridge = Bridge(channel, published, _never_asked, limits=CellLimits(max_output_bytes=2**20))
    assert (await _run(bridge))["status"] == "ok"
    shown = [content["text"] for kind, content, *_ in published if kind == "stream"]
    assert shown[0] == chunk and len(shown) == 2
    assert "c.SandboxKernel.max_output_mb = 1" in shown[1]


async def test_what_the_cell_publishes_itself_or_fails_with_counts_against_the_cap(
        wired: tuple[ScriptedGuest, DualPortChannel]) -> None:
    guest, channel = wired
    chunk = "x" * 600_000
    stream = {"name": "stdout", "text": chunk}
    guest.on("execute", lambda request: [
        p.Published(id=request.id, msg_type="stream", content=stream),
        p.ErrorOutput(id=request.id, ename="E", evalue="", traceback=[chunk]),
        p.Published(id=request.id, msg_type="stream", content=stream),
        done(1)(request)])
    published = Published()
    bridge = Bridge(channel, published, _never_asked, limits=CellLimits(max_output_bytes=2**20))
    assert (await _run(bridge))["status"] == "ok"
    assert [kind for kind, *_ in published] == ["stream", "stream"]
    assert "c.SandboxKernel.max_output_mb = 1" in published[1][1]["text"]


async def test_a_cell_past_its_time_is_interrupted_and_the_reply_says_so(
        wired: tuple[ScriptedGuest, DualPortChannel]) -> None:
    guest, channel = wired
    guest.on("execute", answer())  # runs on
    guest.on("interrupt", lambda request: [
        p.Ack(id=request.id),
        p.ExecuteReply(id=guest.last("execute").id, status="error", execution_count=1,
                       ename="KeyboardInterrupt")])
    published = Published()
    bridge = Bridge(channel, published, _never_asked, limits=CellLimits(timeout_s=0.2))
    reply = await _run(bridge)
    assert reply["ename"] == "KeyboardInterrupt"
    assert [r.type for r in guest.seen] == ["execute", "interrupt"]
    [notice] = _notices(published)
    assert "c.SandboxKernel.cell_timeout_s = 0.2" in notice and "interrupted" in notice


async def test_a_cell_that_ignores_the_interrupt_loses_its_worker(
        wired: tuple[ScriptedGuest, DualPortChannel], monkeypatch: pytest.MonkeyPatch) -> None:
    guest, channel = wired
    monkeypatch.setattr(cell_limits, "END_AFTER_INTERRUPT_S", 0.2)
    guest.on("execute", answer())
    guest.on("interrupt", answer(lambda request: p.Ack(id=request.id)))
    guest.on("end_worker", lambda request: [
        p.Ack(id=request.id),
        p.ExecuteReply(id=guest.last("execute").id, status="error", execution_count=1,
                       ename="WorkerDied")])
    published = Published()
    bridge = Bridge(channel, published, _never_asked, limits=CellLimits(timeout_s=0.2))
    assert (await _run(bridge))["ename"] == "WorkerDied"
    assert [r.type for r in guest.seen] == ["execute", "interrupt", "end_worker"]
    notices = _notices(published)
    assert len(notices) == 2 and all("cell_timeout_s = 0.2" in n for n in notices)
    assert "ended" in notices[1]


async def test_no_limit_by_default(wired: tuple[ScriptedGuest, DualPortChannel]) -> None:
    guest, channel = wired
    guest.on("execute", answer(out("x" * 3_000_000), done(1)))
    published = Published()
    assert (await _run(Bridge(channel, published, _never_asked)))["status"] == "ok"
    assert _notices(published) == []


async def test_what_a_cell_s_threads_print_after_it_ended_counts_against_its_cap(
        wired: tuple[ScriptedGuest, DualPortChannel]) -> None:
    # A thread the cell started printing for ever: past the cap, nothing more goes out
    # under the cell, and the user is told once; the next cell has a cap of its own.
    guest, channel = wired
    chunk = "x" * 300_000
    guest.on("execute", answer(out(chunk), done(1)))
    guest.on("is_complete", answer(lambda r: p.IsCompleteReply(id=r.id, status="complete")))
    published = Published()
    bridge = Bridge(channel, published, _never_asked, limits=CellLimits(max_output_bytes=2**20))
    await _run(bridge)
    cell = guest.last("execute").id
    stream = {"name": "stdout", "text": chunk}
    await asyncio.to_thread(  # from a thread: the loop must read meanwhile
        guest.say, *[p.OutputChunk(id=cell, name="stdout", text=chunk) for _ in range(5)],
        *[p.Published(id=cell, msg_type="stream", content=stream) for _ in range(5)])
    await bridge.is_complete("x")  # answered after them: they have all been handled
    shown = sum(len(c["text"]) for kind, c, *_ in published if kind == "stream"
                and not c["text"].startswith("sandbox: "))
    assert shown <= 2**20
    [notice] = _notices(published)
    assert "c.SandboxKernel.max_output_mb = 1" in notice and "after it ended" in notice
    assert all(parent == PARENT for *_, parent, _, _ in published)
    published.clear()
    assert (await _run(bridge))["status"] == "ok"
    assert [c["text"] for kind, c, *_ in published if kind == "stream"] == [chunk]


async def test_a_comm_handler_s_output_is_held_to_the_cap(
        wired: tuple[ScriptedGuest, DualPortChannel]) -> None:
    guest, channel = wired
    chunk = "x" * 600_000
    guest.on("comm_msg", answer(out(chunk), out(chunk), out(chunk), lambda r: p.Ack(id=r.id)))
    published = Published()
    bridge = Bridge(channel, published, _never_asked, limits=CellLimits(max_output_bytes=2**20))
    msg = {"header": {"msg_id": "comm-1", "msg_type": "comm_msg"},
           "content": {"comm_id": "w", "data": {}}}
    await bridge.comm_from_frontend(msg)
    shown = [c["text"] for kind, c, *_ in published if kind == "stream"]
    assert shown[0] == chunk and len(shown) == 2
    assert "c.SandboxKernel.max_output_mb = 1" in shown[1]
