"""The host waits on no guest answer for ever: a guest that stops answering what its agent
must answer at once is given up on, with a clear error, and its VM stopped; a request between
cells that the worker never answers gets the reply it would get without a VM."""

import time

import pytest

from sandbox_kernel.kernel import bridge, cell_limits
from tests.unit.kernel_fakes import (
    TIMEOUT,
    FakeStarter,
    InprocClient,
    ScriptedGuest,
    answer,
    control,
    reply_to,
    run,
    started,
)

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def guest(monkeypatch: pytest.MonkeyPatch) -> ScriptedGuest:
    monkeypatch.setattr(bridge, "AGENT_ANSWER_S", 0.5)
    monkeypatch.setattr(bridge, "INTROSPECTION_S", 0.5)
    monkeypatch.setattr(cell_limits, "END_AFTER_INTERRUPT_S", 0.2)
    stuck = ScriptedGuest()
    for kind in ("execute", "interrupt", "end_worker", "complete"):
        stuck.on(kind, answer())  # none of them is ever answered
    return stuck


def _given_up_on(client: InprocClient, starter: FakeStarter, msg_id: str) -> None:
    reply = reply_to(client, msg_id)["content"]
    assert reply["ename"] == "VMUnresponsive", reply
    assert "stopped answering" in reply["evalue"] and "Restart the kernel" in reply["evalue"]
    deadline = time.monotonic() + TIMEOUT
    while not starter.vms[0].stopped and time.monotonic() < deadline:
        time.sleep(0.01)
    assert starter.vms[0].stopped  # now, not at shutdown: it may be spinning on the CPUs
    again, _ = run(client, "1")  # and every later cell is answered at once
    assert again["content"]["ename"] == "VMUnresponsive"


def test_a_cell_whose_worker_the_agent_does_not_end_is_given_up_on(
        guest: ScriptedGuest) -> None:
    starter = FakeStarter(guest)
    with started(starter, cell_timeout_s=0.2) as (_, client):
        msg_id = client.execute("while True: pass")
        _given_up_on(client, starter, msg_id)
        assert [r.type for r in guest.seen[:3]] == ["execute", "interrupt", "end_worker"]


def test_an_interrupt_the_agent_does_not_answer_gives_the_guest_up(
        guest: ScriptedGuest) -> None:
    starter = FakeStarter(guest)
    with started(starter) as (_, client):
        msg_id = client.execute("while True: pass")
        assert guest.next_request().type == "execute"
        assert control(client, "interrupt_request")["content"] == {"status": "ok"}
        _given_up_on(client, starter, msg_id)


def test_a_completion_the_worker_never_answers_gets_the_reply_without_a_vm(
        guest: ScriptedGuest) -> None:
    with started(FakeStarter(guest)) as (_, client):
        reply = reply_to(client, client.complete("pri", 3))
        assert reply["content"]["status"] == "ok" and reply["content"]["matches"] == []
