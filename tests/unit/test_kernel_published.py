"""What guest code publishes itself (``kernel.session.send(kernel.iopub_socket, ...)``), host
only: the host checks it as the event of its type, and builds and signs the message itself,
under the cell's parent. A hostile guest can send anything; what it forges is dropped."""

from typing import Any, get_args

import pytest

from sandbox_kernel import protocol as p
from sandbox_kernel.constants import GUEST_IOPUB_TYPES
from tests.unit.kernel_fakes import (
    InprocClient,
    KernelUnderTest,
    ScriptedGuest,
    answer,
    done,
    out,
    run,
)

pytestmark = pytest.mark.timeout(30)



def published(msg_type: str, content: Any, metadata: Any = None,
              buffers: list[bytes] | None = None) -> Any:
    """A ``published`` event as the guest may write it, unchecked: ``model_construct`` lets a
    test forge what the models would refuse to build."""
    def event(request: Any) -> p.Published:
        return p.Published.model_construct(id=request.id, type="published", msg_type=msg_type,
                                           content=content, metadata=metadata or {},
                                           buffers=buffers or [])
    return event


def _outputs(msgs: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    return [(m["msg_type"], m["content"]) for m in msgs
            if m["msg_type"] not in ("status", "execute_input")]


def test_the_protocol_takes_the_types_the_worker_sends() -> None:
    assert set(get_args(p.PublishedType)) == GUEST_IOPUB_TYPES


def test_each_type_a_cell_may_publish_goes_out_under_the_cell(
        kernel: tuple[KernelUnderTest, InprocClient], guest: ScriptedGuest) -> None:
    _, client = kernel
    guest.on("execute", answer(
        published("stream", {"name": "stdout", "text": "tqdm 10%\r"}),
        published("display_data", {"data": {"text/html": "<b>bar</b>"}, "metadata": {"m": 1},
                                   "transient": {"display_id": "bar"}}),
        published("update_display_data", {"data": {"text/plain": "50%"},
                                          "transient": {"display_id": "bar"}}),
        published("clear_output", {"wait": True}),
        published("execute_result", {"execution_count": 1, "data": {"text/plain": "2"}}),
        published("error", {"ename": "E", "evalue": "v", "traceback": ["t"]}),
        published("comm_msg", {"comm_id": "c1", "data": {"method": "update"}},
                  metadata={"version": "2"}, buffers=[b"\x00\x01"]),
        done(1)))
    reply, msgs = run(client, "cell")
    assert _outputs(msgs) == [
        ("stream", {"name": "stdout", "text": "tqdm 10%\r"}),
        ("display_data", {"data": {"text/html": "<b>bar</b>"}, "metadata": {"m": 1},
                          "transient": {"display_id": "bar"}}),
        ("update_display_data", {"data": {"text/plain": "50%"}, "metadata": {},
                                 "transient": {"display_id": "bar"}}),
        ("clear_output", {"wait": True}),
        ("execute_result", {"execution_count": 1, "data": {"text/plain": "2"}, "metadata": {}}),
        ("error", {"ename": "E", "evalue": "v", "traceback": ["t"]}),
        ("comm_msg", {"comm_id": "c1", "data": {"method": "update"}}),
    ]
    assert all(m["parent_header"] == reply["parent_header"] for m in msgs)
    comm = next(m for m in msgs if m["msg_type"] == "comm_msg")
    assert comm["metadata"] == {"version": "2"} and comm["buffers"] == [b"\x00\x01"]


@pytest.mark.parametrize("msg_type", [
    "status", "execute_input", "execute_reply", "shutdown_reply", "kernel_info_reply",
    "input_request", "debug_event", "iopub_welcome", "", "stream\n", "published"])
def test_a_type_a_cell_may_not_publish_is_refused(
        kernel: tuple[KernelUnderTest, InprocClient], guest: ScriptedGuest,
        msg_type: str) -> None:
    _, client = kernel
    guest.on("execute", answer(
        published(msg_type, {"execution_state": "idle", "name": "stdout", "text": "forged"}),
        out("mine\n"), done(1)))
    reply, msgs = run(client, "cell")
    assert reply["content"]["status"] == "ok"
    assert _outputs(msgs) == [("stream", {"name": "stdout", "text": "mine\n"})]
    assert [m["msg_type"] for m in msgs].count("status") == 2  # busy, idle: the kernel's own


HOSTILE_CONTENT = [
    ("stream", {"name": "stdin", "text": "x"}),
    ("stream", {"name": "stdout", "text": 5}),
    ("stream", {"name": "stdout"}),
    ("stream", "not a dict"),
    ("display_data", {"data": "text/plain"}),
    ("display_data", {"data": {"text/plain": "x"}, "metadata": ["m"]}),
    ("execute_result", {"execution_count": "many", "data": {"text/plain": "x"}}),
    ("error", {"ename": "E", "evalue": "v", "traceback": "t"}),
    ("error", {"ename": None, "evalue": "v"}),
    ("clear_output", {"wait": {"no": 1}}),
    ("comm_msg", {"data": {}}),
    ("comm_open", {"comm_id": ["c"], "target_name": "jupyter.widget"}),
]


@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings")
@pytest.mark.parametrize(("msg_type", "content"), HOSTILE_CONTENT)
def test_content_that_is_not_what_its_type_holds_is_dropped(
        kernel: tuple[KernelUnderTest, InprocClient], guest: ScriptedGuest, msg_type: str,
        content: Any) -> None:
    _, client = kernel
    guest.on("execute", answer(published(msg_type, content), out("mine\n"), done(1)))
    reply, msgs = run(client, "cell")
    assert reply["content"]["status"] == "ok"
    assert _outputs(msgs) == [("stream", {"name": "stdout", "text": "mine\n"})]


def test_the_guest_picks_neither_header_parent_nor_extra_fields(
        kernel: tuple[KernelUnderTest, InprocClient], guest: ScriptedGuest) -> None:
    _, client = kernel
    forged = {"msg_id": "forged", "msg_type": "status", "session": "forged"}
    guest.on("execute", answer(
        published("display_data", {
            "data": {"text/plain": "x", "not a mime type": "y"}, "metadata": {},
            "transient": {"display_id": {"nested": "id"}, "other": 1},
            "header": forged, "parent_header": forged, "channel": "shell", "extra": 1}),
        published("stream", {"name": "stderr", "text": "t", "parent_header": forged}),
        done(1)))
    reply, msgs = run(client, "cell")
    assert _outputs(msgs) == [
        ("display_data", {"data": {"text/plain": "x"}, "metadata": {}, "transient": {}}),
        ("stream", {"name": "stderr", "text": "t"}),
    ]
    for msg in msgs:
        assert msg["parent_header"] == reply["parent_header"]
        assert msg["header"]["msg_id"] != "forged"
        assert msg["header"]["session"] == reply["header"]["session"]
