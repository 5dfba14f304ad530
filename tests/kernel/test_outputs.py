"""Results, displays and output as ipykernel publishes them."""

import queue
import time
from typing import Any

import pytest

from tests.kernel.kernels import (
    Kernel,
    run,
    stdout_of,
    without_input,
)

pytestmark = [pytest.mark.vm, pytest.mark.timeout(240)]


def test_display_id_updates(kernel: Kernel) -> None:
    _, kc = kernel
    _, msgs = run(kc, "h = display('first', display_id=True)\nh.update('second')")
    msgs = without_input(msgs)
    kinds = [m["msg_type"] for m in msgs]
    assert kinds == ["display_data", "update_display_data"]
    first, second = (m["content"] for m in msgs)
    assert first["transient"]["display_id"] == second["transient"]["display_id"]
    assert second["data"]["text/plain"] == "'second'"


def test_clear_output_wait_flag(kernel: Kernel) -> None:
    _, kc = kernel
    _, msgs = run(kc, "from IPython.display import clear_output\nclear_output(wait=True)")
    assert [(m["msg_type"], m["content"]) for m in without_input(msgs)] == \
        [("clear_output", {"wait": True})]


def test_execute_result_carries_rich_bundle_and_count(kernel: Kernel) -> None:
    _, kc = kernel
    code = ("class Rich:\n"
            "    def _repr_html_(self): return '<i>r</i>'\n"
            "    def _repr_markdown_(self): return '*r*'\n"
            "    def _repr_latex_(self): return '$r$'\n"
            "    def _repr_json_(self): return {'r': 1}\n"
            "Rich()")
    reply, msgs = run(kc, code)
    result = next(m["content"] for m in msgs if m["msg_type"] == "execute_result")
    assert {"text/plain", "text/html", "text/markdown", "text/latex",
            "application/json"} <= set(result["data"])
    assert result["execution_count"] == reply["content"]["execution_count"]


def test_builtin_results_honour_registered_formatters_and_precision(kernel: Kernel) -> None:
    # Plain builtins skip IPython's full formatter round, except where the user changed it.
    _, kc = kernel

    def result_of(code: str) -> dict[str, Any]:
        _, msgs = run(kc, code)
        return next(m["content"]["data"] for m in msgs if m["msg_type"] == "execute_result")

    assert result_of("6 * 7") == {"text/plain": "42"}
    for quiet in ("6 * 7;", "6 * 7;  # quiet", "x = 'a;b'\nx;"):
        assert not [m for m in run(kc, quiet)[1] if m["msg_type"] == "execute_result"]
    assert result_of("'a;b'") == {"text/plain": "'a;b'"}
    assert result_of("list(range(3))") == {"text/plain": "[0, 1, 2]"}
    assert result_of("'a\\nb'") == {"text/plain": "'a\\nb'"}
    run(kc, "get_ipython().display_formatter.formatters['text/html']"
            ".for_type(int, lambda n: f'<b>{n}</b>')")
    assert result_of("7") == {"text/plain": "7", "text/html": "<b>7</b>"}
    assert result_of("True") == {"text/plain": "True", "text/html": "<b>True</b>"}  # bool is int
    run(kc, "get_ipython().display_formatter.formatters['text/html'].pop(int)")
    assert result_of("7") == {"text/plain": "7"}
    run(kc, "%precision 2")
    assert result_of("3.14159") == {"text/plain": "3.14"}
    run(kc, "%precision")
    assert result_of("3.14159") == {"text/plain": "3.14159"}
    plain = "get_ipython().display_formatter.formatters['text/plain']"
    run(kc, f"{plain}.for_type(int, lambda n, p, cycle: p.text(f'int {{n}}'))")
    assert result_of("7") == {"text/plain": "int 7"}
    run(kc, f"{plain}.pop(int)")
    assert result_of("True") == {"text/plain": "True"}
    run(kc, "get_ipython().display_formatter.formatters['text/html'].enabled = False")
    run(kc, "get_ipython().display_formatter.formatters['text/html'].for_type(int, str)")
    assert result_of("8") == {"text/plain": "8"}  # a disabled formatter adds nothing


def test_silent_execution_publishes_no_input_or_result(kernel: Kernel) -> None:
    _, kc = kernel
    before, _ = run(kc, "1")
    reply, msgs = run(kc, "41 + 1", silent=True)
    assert reply["content"]["status"] == "ok"
    assert not [m for m in msgs if m["msg_type"] in ("execute_input", "execute_result")]
    after, _ = run(kc, "2")
    assert after["content"]["execution_count"] == before["content"]["execution_count"] + 1


def test_top_level_await_and_async_for(kernel: Kernel) -> None:
    _, kc = kernel
    reply, msgs = run(kc, "import asyncio\nawait asyncio.sleep(0)\n41 + 1")
    assert reply["content"]["status"] == "ok"
    assert [m["content"]["data"] for m in msgs if m["msg_type"] == "execute_result"] == \
        [{"text/plain": "42"}]
    code = ("async def gen():\n    yield 1\n    yield 2\n"
            "async for v in gen():\n    print(v)")
    assert stdout_of(run(kc, code)[1]) == "1\n2\n"


def test_user_expressions(kernel: Kernel) -> None:
    _, kc = kernel
    reply, _ = run(kc, "ux = 20", user_expressions={"double": "ux * 2"})
    value = reply["content"]["user_expressions"]["double"]
    assert value["status"] == "ok" and value["data"]["text/plain"] == "40"


def test_stop_on_error_aborts_queued_cells(kernel: Kernel) -> None:
    _, kc = kernel
    failing = kc.execute("raise RuntimeError('stop here')")
    queued = kc.execute("print('must not run')")
    replies = {}
    while len(replies) < 2:
        msg = kc.get_shell_msg(timeout=60)
        replies[msg["parent_header"]["msg_id"]] = msg["content"]
    assert replies[failing]["status"] == "error"
    assert replies[queued]["status"] == "aborted"
    time.sleep(0.5)
    assert stdout_of(run(kc, "print('runs again')")[1]) == "runs again\n"


def test_what_a_thread_prints_after_its_cell_ended_shows_under_that_cell(kernel: Kernel) -> None:
    _, kc = kernel
    reply, _ = run(kc, "import threading, time\ndef later():\n    time.sleep(0.5)\n"
                       "    print('from the thread')\nthreading.Thread(target=later).start()")
    cell = reply["parent_header"]["msg_id"]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            msg = kc.get_iopub_msg(timeout=1)
        except queue.Empty:
            continue
        if msg["msg_type"] == "stream":
            assert msg["content"]["text"] == "from the thread\n"
            assert msg["parent_header"]["msg_id"] == cell
            return
    raise AssertionError("the thread's output never came")
