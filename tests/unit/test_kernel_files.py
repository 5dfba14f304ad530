"""What the kernel tells the user about the shared folder, host only: the plan in the banner,
why nothing is shared on the first cell, and the folder's limits under the cell that hit
them."""

import time
from pathlib import Path

import pytest

from tests.unit.kernel_fakes import (
    FakeStarter,
    ScriptedGuest,
    answer,
    done,
    run,
    started,
)

pytestmark = pytest.mark.timeout(30)


def _stderr(msgs: list[dict[str, object]]) -> str:
    return "".join(m["content"]["text"] for m in msgs  # type: ignore[index]
                   if m["msg_type"] == "stream" and m["content"]["name"] == "stderr")  # type: ignore[index]


def test_the_start_folder_is_shared_and_the_banner_says_so(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    starter = FakeStarter()
    with started(starter) as (_, client):
        banner = client.kernel_info(reply=True, timeout=10)["content"]["banner"]
        assert f"{tmp_path} (on the host) is this VM's working folder" in banner
        client.execute_interactive("pass", timeout=10)
    plan = starter.configs[0].share
    assert plan is not None and plan.settings is not None
    assert plan.settings.folder == tmp_path


def test_the_first_cell_says_why_nothing_is_shared(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir("/")
    guest = ScriptedGuest()
    guest.on("execute", answer(done(1)))
    with started(FakeStarter(guest)) as (_, client):
        _, first = run(client, "1")
        _, second = run(client, "2")
    assert "no folder of the host is visible in this VM" in _stderr(first)
    assert "root of the file system" in _stderr(first)
    assert _stderr(second) == ""


def test_no_word_when_sharing_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir("/")
    guest = ScriptedGuest()
    guest.on("execute", answer(done(1)))
    with started(FakeStarter(guest), shared_folder=False) as (_, client):
        _, first = run(client, "1")
    assert _stderr(first) == ""


def test_a_limit_the_guest_hits_is_told_under_its_cell(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    starter = FakeStarter()

    def hits_the_limit(request: object) -> list[object]:
        # From the share's thread, while the cell runs, as the FUSE server tells it.
        starter.vms[0].on_share_notice("data.csv is 3.1 GB, over the limit (share_max_file_mb)")
        time.sleep(0.2)
        return [done(1)(request)]

    starter.guest.on("execute", hits_the_limit)
    with started(starter) as (_, client):
        reply, msgs = run(client, "open('data.csv').read()")
    notices = [m for m in msgs if m["msg_type"] == "stream"]
    assert [m["content"] for m in notices] == [{
        "name": "stderr", "text": "sandbox: data.csv is 3.1 GB, over the limit "
                                  "(share_max_file_mb)\n"}]
    assert notices[0]["parent_header"] == reply["parent_header"]


def test_the_wheelhouse_is_planned_and_named_in_the_banner(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "wheels").mkdir()
    starter = FakeStarter()
    with started(starter, wheelhouse=str(tmp_path / "wheels")) as (_, client):
        banner = client.kernel_info(reply=True, timeout=10)["content"]["banner"]
        assert f"{tmp_path / 'wheels'} (on the host) is the wheelhouse" in banner
        client.execute_interactive("pass", timeout=10)
    plan = starter.configs[0].wheelhouse
    assert plan is not None and plan.settings is not None
    assert plan.settings.folder == tmp_path / "wheels" and not plan.settings.writable


def test_the_first_cell_says_why_a_wheelhouse_is_not_shared(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    guest = ScriptedGuest()
    guest.on("execute", answer(done(1)))
    with started(FakeStarter(guest), wheelhouse=str(tmp_path / "absent")) as (_, client):
        _, first = run(client, "1")
    assert "sandbox: no wheelhouse: " in _stderr(first)
    assert "absent is not shared with the VM: it is not a folder" in _stderr(first)
    assert "c.SandboxKernel.wheelhouse" in _stderr(first)


def test_the_first_cell_says_why_a_wheelhouse_the_vm_could_not_mount_is_missing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "wheels").mkdir()
    guest = ScriptedGuest()
    guest.on("execute", answer(done(1)))
    starter = FakeStarter(guest)
    with started(starter, wheelhouse=str(tmp_path / "wheels")) as (_, client):
        deadline = time.monotonic() + 5
        while not starter.vms and time.monotonic() < deadline:
            time.sleep(0.01)
        starter.vms[0].wheelhouse_failure = "it could not be mounted (EIO)"
        _, first = run(client, "1")
    assert "sandbox: no wheelhouse: it could not be mounted (EIO)" in _stderr(first)
