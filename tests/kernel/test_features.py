"""What the conformance suite does not cover: stdin, interrupt, displays, flags, comms, restart."""

import contextlib
import os
import queue
import re
import signal
import socket
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import zmq
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager

from sandbox_kernel.vm.rundir import sweep_stale_run_dirs
from tests.kernel.conftest import KERNEL_NAME, iopub_until_idle, run, start_kernel, stdout_of

Kernel = tuple[KernelManager, BlockingKernelClient]


def without_input(msgs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in msgs if m["msg_type"] != "execute_input"]


def test_input_round_trip(kernel: Kernel) -> None:
    _, kc = kernel
    msg_id = kc.execute("name = input('Your name? ')\nprint('hi', name)", allow_stdin=True)
    request = kc.get_stdin_msg(timeout=60)
    assert request["msg_type"] == "input_request"
    assert request["content"] == {"prompt": "Your name? ", "password": False}
    kc.input("Ada")
    reply = kc.get_shell_msg(timeout=60)
    assert reply["content"]["status"] == "ok"
    assert stdout_of(iopub_until_idle(kc, msg_id)) == "hi Ada\n"


def test_getpass_asks_for_a_password(kernel: Kernel) -> None:
    _, kc = kernel
    msg_id = kc.execute("import getpass\nsecret = getpass.getpass()\nprint(len(secret))",
                        allow_stdin=True)
    request = kc.get_stdin_msg(timeout=60)
    assert request["content"]["password"] is True
    kc.input("hunter2")
    reply = kc.get_shell_msg(timeout=60)
    msgs = iopub_until_idle(kc, msg_id)
    assert reply["content"]["status"] == "ok", (reply, msgs)
    assert stdout_of(msgs) == "7\n", msgs


def test_input_without_stdin_fails_clearly_and_does_not_hang(kernel: Kernel) -> None:
    _, kc = kernel
    reply, _ = run(kc, "input('?')", allow_stdin=False, timeout=30)
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "StdinNotImplementedError"


def test_interrupt_message_stops_a_busy_cell_and_keeps_state(kernel: Kernel) -> None:
    km, kc = kernel
    run(kc, "survivor = 'still here'")
    msg_id = kc.execute("while True: pass")
    time.sleep(1.0)
    sent = time.monotonic()
    km.interrupt_kernel()
    reply = kc.get_shell_msg(timeout=30)
    elapsed = time.monotonic() - sent
    assert reply["parent_header"]["msg_id"] == msg_id
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    assert elapsed < 5
    iopub_until_idle(kc, msg_id)
    _, msgs = run(kc, "print(survivor)")
    assert stdout_of(msgs) == "still here\n"


def test_sigint_during_a_cell_interrupts_it_and_the_kernel_lives_on(kernel: Kernel) -> None:
    # What a frontend that signals the kernel (ignoring the kernelspec's interrupt_mode), or a
    # user's kill -INT, does to ipykernel: the cell stops, the kernel stays.
    km, kc = kernel
    run(kc, "survivor = 'still here'")
    msg_id = kc.execute("while True: pass")
    time.sleep(1.0)
    km.signal_kernel(signal.SIGINT)
    reply = kc.get_shell_msg(timeout=30)
    assert reply["parent_header"]["msg_id"] == msg_id
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    iopub_until_idle(kc, msg_id)
    assert km.is_alive()
    assert stdout_of(run(kc, "print(survivor)")[1]) == "still here\n"


def test_interrupt_while_waiting_for_input(kernel: Kernel) -> None:
    km, kc = kernel
    msg_id = kc.execute("input('never answered')", allow_stdin=True)
    kc.get_stdin_msg(timeout=60)
    km.interrupt_kernel()
    reply = kc.get_shell_msg(timeout=30)
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    iopub_until_idle(kc, msg_id)
    assert stdout_of(run(kc, "print('after')")[1]) == "after\n"


def test_kernel_info_claims_no_debugger_and_no_subshells(kernel: Kernel) -> None:
    # Neither crosses into the VM; JupyterLab would otherwise offer its debugger panel.
    _, kc = kernel
    info = kc.kernel_info(reply=True, timeout=30)["content"]
    assert info["supported_features"] == []
    assert info["implementation"] == "sandbox-kernel" and info["language_info"]["name"] == "python"


def test_interrupt_with_nothing_running_is_harmless(kernel: Kernel) -> None:
    km, kc = kernel
    km.interrupt_kernel()
    time.sleep(0.3)
    assert stdout_of(run(kc, "print('ok')")[1]) == "ok\n"


def _qemu_children(kernel_pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == kernel_pid and b"qemu-system" in cmdline:
            found.append(int(entry.name))
    return found


def _kernel_pid(km: KernelManager) -> int:
    pid = km.provisioner.process.pid  # type: ignore[union-attr]
    return int(pid)


def test_sigint_to_the_kernel_process_group_does_not_kill_qemu(kernel: Kernel) -> None:
    km, kc = kernel
    pid = _kernel_pid(km)
    qemu = _qemu_children(pid)
    assert qemu, "the kernel should own a QEMU process"
    os.killpg(os.getpgid(pid), signal.SIGINT)
    time.sleep(0.5)
    assert all(Path(f"/proc/{q}").exists() for q in qemu)
    assert stdout_of(run(kc, "print(survivor)")[1]) == "still here\n"


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


def test_magics_and_shell_escapes(kernel: Kernel) -> None:
    _, kc = kernel
    _, msgs = run(kc, "%time x = sum(range(10))\n!echo from-a-shell && id -u")
    out = stdout_of(msgs)
    assert "Wall time" in out and "from-a-shell" in out and "1000" in out
    _, msgs = run(kc, "%%capture captured\nprint('hidden')")
    assert stdout_of(msgs) == ""
    assert stdout_of(run(kc, "print(captured.stdout.strip())")[1]) == "hidden\n"
    assert "x" in stdout_of(run(kc, "%who")[1])
    assert "Stored 'x'" in stdout_of(run(kc, "%store x")[1])
    assert stdout_of(run(kc, "%%bash\necho $BASH_VERSION | cut -c1")[1]) == "5\n"


def test_matplotlib_shows_inline_png(kernel: Kernel) -> None:
    _, kc = kernel
    _, msgs = run(kc, "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.show()",
                  timeout=120)
    images = [m["content"]["data"] for m in msgs if m["msg_type"] == "display_data"]
    assert images and images[0]["image/png"].startswith("iVBORw0KGgo")


def test_matplotlib_magics_draw_inline_and_gui_toolkits_are_refused(kernel: Kernel) -> None:
    # A bare %matplotlib reads the image's matplotlibrc, whose Debian default is TkAgg.
    _, kc = kernel
    _, msgs = run(kc, "%matplotlib", timeout=120)
    assert "matplotlib_inline" in stdout_of(msgs)
    reply, msgs = run(kc, "%matplotlib inline\nimport matplotlib.pyplot as plt\n"
                          "plt.plot([2, 1])\nplt.show()", timeout=120)
    assert reply["content"]["status"] == "ok", reply["content"]
    assert any("image/png" in m["content"].get("data", {}) for m in msgs)
    _, msgs = run(kc, "%gui tk")
    stderr = "".join(m["content"]["text"] for m in msgs
                     if m["msg_type"] == "stream" and m["content"]["name"] == "stderr")
    assert "no display" in stderr


def test_pip_magic_and_command_say_what_the_image_has_and_what_it_lacks(kernel: Kernel) -> None:
    _, kc = kernel
    reply, msgs = run(kc, "%pip install -q numpy matplotlib>=3")
    assert reply["content"]["status"] == "ok"
    assert "Already in the sandbox image: numpy" in stdout_of(msgs)
    reply, msgs = run(kc, "%pip install numpy no-such-package-xyz")
    assert reply["content"]["ename"] == "UsageError"
    assert "no-such-package-xyz" in reply["content"]["evalue"]
    assert "error" not in [m["msg_type"] for m in msgs]  # printed to stderr, as ipykernel
    _, msgs = run(kc, "!pip install numpy\n!pip3 install no-such-package-xyz")
    text = "".join(m["content"]["text"] for m in msgs if m["msg_type"] == "stream")
    assert "Already in the sandbox image: numpy" in text
    assert "does not have: no-such-package-xyz" in text


def test_a_usage_error_is_answered_as_ipykernel_does(kernel: Kernel) -> None:
    # IPython prints it to stderr rather than showing a traceback; the reply used to say
    # "UnknownError" and an empty error output went out besides.
    _, kc = kernel
    reply, msgs = run(kc, "%load_ext")
    content = reply["content"]
    assert (content["ename"], content["evalue"]) == ("UsageError", "Missing module name.")
    assert [m["msg_type"] for m in without_input(msgs)] == ["stream"]


def test_error_reply_keeps_the_cell_s_payload(kernel: Kernel) -> None:
    _, kc = kernel
    reply, _ = run(kc, "get_ipython().set_next_input('retry()')\n1/0")
    content = reply["content"]
    assert content["status"] == "error" and content["user_expressions"] == {}
    assert [p["text"] for p in content["payload"]] == ["retry()"]


def test_exit_keep_kernel_keeps_it(kernel: Kernel) -> None:
    km, kc = kernel
    run(kc, "kept = 7")
    reply, _ = run(kc, "exit(keep_kernel=True)")
    assert reply["content"]["payload"] == [{"source": "ask_exit", "keepkernel": True}]
    time.sleep(1)  # ipykernel would have stopped after 0.1 s
    assert km.is_alive()
    assert stdout_of(run(kc, "print(kept)")[1]) == "7\n"


def test_error_traceback_is_formatted_like_ipykernel(kernel: Kernel) -> None:
    _, kc = kernel
    reply, msgs = run(kc, "def g():\n    return 1 / 0\ng()")
    errors = [m["content"] for m in msgs if m["msg_type"] == "error"]
    assert len(errors) == 1
    plain = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(reply["content"]["traceback"]))
    assert "ZeroDivisionError" in plain and "----> 3 g()" in plain
    assert "\x1b[0;31m" in reply["content"]["traceback"][0]
    # Syntax colours, and the failing expression on a yellow background, as in ipykernel.
    coloured = "".join(reply["content"]["traceback"])
    assert "\x1b[38;5;" in coloured and re.search(r"\x1b\[[0-9;]*43m", coloured)


def test_tracebacks_show_notes_and_groups_and_survive_a_failing_str(kernel: Kernel) -> None:
    _, kc = kernel
    reply, _ = run(kc, "e = ValueError('base')\ne.add_note('first note')\n"
                       "e.add_note('second note')\nraise e")
    plain = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(reply["content"]["traceback"]))
    assert plain.endswith("ValueError: base\nfirst note\nsecond note")
    # What an asyncio TaskGroup raises: IPython 8.5 showed the group but not what is in it.
    reply, _ = run(kc, "import asyncio\nasync def boom():\n    raise KeyError('in a task')\n"
                       "async with asyncio.TaskGroup() as group:\n    group.create_task(boom())")
    plain = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(reply["content"]["traceback"]))
    assert reply["content"]["ename"] == "ExceptionGroup"
    assert "+---------------- 1 ----------------" in plain and "KeyError: 'in a task'" in plain
    reply, msgs = run(kc, "class Odd(Exception):\n    def __str__(self):\n"
                          "        raise RuntimeError('no str')\nraise Odd()")
    errors = [m["content"] for m in msgs if m["msg_type"] == "error"]
    assert [(e["ename"], e["evalue"]) for e in errors] == [("Odd", "<exception str() failed>")]
    assert reply["content"]["ename"] == "Odd"


def test_tracebacks_that_do_not_end_the_cell_are_shown_in_order(kernel: Kernel) -> None:
    # IPython shows these and goes on; ipykernel publishes each as an error output.
    _, kc = kernel
    reply, msgs = run(kc, "print('before')\ntry:\n    1 / 0\nexcept ZeroDivisionError:\n"
                          "    get_ipython().showtraceback()\nprint('after')")
    assert reply["content"]["status"] == "ok"
    kinds = [(m["msg_type"], m["content"].get("text") or m["content"].get("ename"))
             for m in without_input(msgs)]
    assert kinds == [("stream", "before\n"), ("error", "ZeroDivisionError"),
                     ("stream", "after\n")]
    _, msgs = run(kc, "class Unshowable:\n    def _repr_markdown_(self):\n"
                      "        raise ValueError('no markdown')\nUnshowable()")
    errors = [m["content"] for m in msgs if m["msg_type"] == "error"]
    assert [e["evalue"] for e in errors] == ["no markdown"]
    assert any(m["msg_type"] == "execute_result" for m in msgs)  # the text/plain still shows


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


def test_a_worker_that_dies_shows_why_and_the_next_cell_runs(kernel: Kernel) -> None:
    # The agent reports this one, not IPython: the host publishes its error output.
    _, kc = kernel
    reply, msgs = run(kc, "import os\nos._exit(3)")
    assert reply["content"]["ename"] == "WorkerDied"
    errors = [m["content"] for m in msgs if m["msg_type"] == "error"]
    assert [e["ename"] for e in errors] == ["WorkerDied"]
    assert "exit code 3" in errors[0]["evalue"]
    assert errors[0]["traceback"], "a frontend shows an error by its traceback"
    assert stdout_of(run(kc, "print('fresh')")[1]) == "fresh\n"


def test_a_worker_out_of_memory_is_told_so_and_the_next_cell_runs(kernel: Kernel) -> None:
    _, kc = kernel
    reply, _ = run(kc, "hoard = []\nwhile True:\n    hoard.append(bytearray(64 * 2**20))",
                   timeout=120)
    assert reply["content"]["ename"] == "WorkerDied"
    assert "ran out of memory" in reply["content"]["evalue"]
    assert stdout_of(run(kc, "print('fresh')")[1]) == "fresh\n"


def test_inspect_both_detail_levels(kernel: Kernel) -> None:
    _, kc = kernel
    run(kc, "def documented(a, b=2):\n    'Adds.'\n    return a + b")
    short = kc.inspect("documented", 10, detail_level=0, reply=True, timeout=30)["content"]
    full = kc.inspect("documented", 10, detail_level=1, reply=True, timeout=30)["content"]
    assert short["found"] and "Adds." in short["data"]["text/plain"]
    assert "return a + b" in re.sub(r"\x1b\[[0-9;]*m", "", full["data"]["text/plain"])


def test_completion_cursor_positions_with_non_ascii(kernel: Kernel) -> None:
    _, kc = kernel
    run(kc, "größe_1 = 1\ngröße_2 = 2")
    code = "ä = 1; größ"
    reply = kc.complete(code, len(code), reply=True, timeout=30)["content"]
    assert {"größe_1", "größe_2"} <= set(reply["matches"])
    assert (reply["cursor_start"], reply["cursor_end"]) == (len("ä = 1; "), len(code))


def test_is_complete_gives_an_indent_hint(kernel: Kernel) -> None:
    _, kc = kernel
    msg_id = kc.is_complete("for i in range(3):")
    reply = kc.get_shell_msg(timeout=30)
    assert reply["parent_header"]["msg_id"] == msg_id
    assert reply["content"] == {"status": "incomplete", "indent": "    "}


def _comm_msgs(msgs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [m for m in msgs if m["msg_type"] == kind]


def test_widget_syncs_both_ways(kernel: Kernel) -> None:
    _, kc = kernel
    _, msgs = run(kc, "import ipywidgets as w\nslider = w.IntSlider(value=3)\nslider",
                  timeout=120)
    opens = _comm_msgs(msgs, "comm_open")
    slider_open = next(m for m in opens if m["content"]["data"]["state"].get("_model_name")
                       == "IntSliderModel")
    assert slider_open["content"]["target_name"] == "jupyter.widget"
    assert slider_open["content"]["data"]["state"]["value"] == 3
    comm_id = slider_open["content"]["comm_id"]
    view = next(m for m in msgs if m["msg_type"] == "execute_result")
    assert view["content"]["data"]["application/vnd.jupyter.widget-view+json"]["model_id"] \
        == comm_id

    # frontend -> kernel: the user drags the slider
    update = kc.session.msg("comm_msg", {"comm_id": comm_id, "data": {
        "method": "update", "state": {"value": 7}, "buffer_paths": []}})
    kc.shell_channel.send(update)
    assert stdout_of(run(kc, "print(slider.value)")[1]) == "7\n"

    # kernel -> frontend: code sets the value
    _, msgs = run(kc, "slider.value = 9")
    updates = [m["content"]["data"] for m in _comm_msgs(msgs, "comm_msg")
               if m["content"]["comm_id"] == comm_id]
    assert {"method": "update", "state": {"value": 9}, "buffer_paths": []} in updates

    info = kc.comm_info(target_name="jupyter.widget", reply=True, timeout=30)["content"]
    assert comm_id in info["comms"]


def _output_widget_steps(msgs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """What the frontend's Output widget goes by: its msg_id as it changes, and the text."""
    steps = []
    for m in msgs:
        state = m["content"].get("data", {}).get("state", {}) if m["msg_type"] == "comm_msg" \
            else {}
        if "msg_id" in state:
            steps.append(("msg_id", state["msg_id"]))
        elif m["msg_type"] == "stream":
            steps.append(("stream", m["content"]["text"]))
    return steps


def test_output_widget_takes_what_is_printed_inside_it(kernel: Kernel) -> None:
    # The frontend puts output whose parent is the widget's msg_id into the widget, while
    # that msg_id is set; ipywidgets sets it from the kernel's parent request.
    _, kc = kernel
    msg_id = kc.execute("import ipywidgets as w\nout = w.Output()\ndisplay(out)\n"
                        "with out:\n    print('inside')\nprint('outside')")
    msgs = iopub_until_idle(kc, msg_id)
    assert _output_widget_steps(msgs) == [("msg_id", msg_id), ("stream", "inside\n"),
                                          ("msg_id", ""), ("stream", "outside\n")]


def test_interact_shows_its_function_s_output_when_the_slider_moves(kernel: Kernel) -> None:
    _, kc = kernel
    _, msgs = run(kc, "from ipywidgets import interact\n"
                      "def tenfold(x):\n    print(x * 10)\n_ = interact(tenfold, x=1)")
    slider = next(m["content"]["comm_id"] for m in _comm_msgs(msgs, "comm_open")
                  if m["content"]["data"]["state"].get("_model_name") == "IntSliderModel")
    update = kc.session.msg("comm_msg", {"comm_id": slider, "data": {
        "method": "update", "state": {"value": 2}, "buffer_paths": []}})
    kc.shell_channel.send(update)
    moved = update["header"]["msg_id"]
    msgs = iopub_until_idle(kc, moved)
    assert ("stream", "20\n") in _output_widget_steps(msgs)
    steps = _output_widget_steps(msgs)
    assert steps.index(("msg_id", moved)) < steps.index(("stream", "20\n")) \
        < steps.index(("msg_id", ""))


def test_restart_gives_a_fresh_vm_and_shutdown_leaves_nothing() -> None:
    km, kc = start_kernel()
    try:
        run(kc, "leftover = 1")
        old_qemu = _qemu_children(_kernel_pid(km))
        km.restart_kernel(now=False)
        kc.wait_for_ready(timeout=120)
        reply, _ = run(kc, "leftover", timeout=150)
        assert reply["content"]["ename"] == "NameError"
        assert old_qemu and not any(Path(f"/proc/{q}").exists() for q in old_qemu)
        new_qemu = _qemu_children(_kernel_pid(km))
        assert new_qemu
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)
    assert not any(Path(f"/proc/{q}").exists() for q in new_qemu)


def test_exit_in_a_cell_ends_the_kernel_and_its_vm_as_in_ipykernel() -> None:
    # Frontends restart a kernel that ends this way; `exit()` is how notebooks ask for one.
    km, kc = start_kernel()
    try:
        process = km.provisioner.process  # type: ignore[union-attr]
        qemu = _qemu_children(process.pid)
        reply, _ = run(kc, "exit()")
        assert reply["content"]["payload"] == [{"source": "ask_exit", "keepkernel": False}]
        assert process.wait(timeout=30) == 0
        assert qemu and not any(Path(f"/proc/{q}").exists() for q in qemu)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


@pytest.mark.parametrize("snapshots", ["1", "0"])
def test_the_guest_keeps_the_host_s_time_zone(snapshots: str) -> None:
    # Restored and cold-booted VMs both: a local kernel would show local time.
    env = {**os.environ, "TZ": "Europe/Berlin", "SANDBOX_KERNEL_SNAPSHOTS": snapshots}
    km, kc = start_kernel(env=env)
    try:
        _, msgs = run(kc, "import time\nprint(time.localtime().tm_gmtoff)")
        offset = datetime.now(ZoneInfo("Europe/Berlin")).utcoffset()
        assert offset is not None
        assert stdout_of(msgs) == f"{int(offset.total_seconds())}\n"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)


def test_kernel_exits_by_itself_after_shutdown_requests() -> None:
    # ipykernel's control thread used to lose a race with the IOPub thread's atexit stop at
    # about every second shutdown, and then sat out a 10 s flush timeout.
    for _ in range(4):
        km, kc = start_kernel()
        process = km.provisioner.process  # type: ignore[union-attr]
        kc.shutdown()
        try:
            code = process.wait(timeout=8)
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=True)
        assert code == 0


def test_shutdown_before_any_cell_stops_the_early_started_vm() -> None:
    # The restore begins before ipykernel is imported; the kernel takes the VM over only
    # after the first kernel_info. A shutdown before any cell must still end it cleanly.
    km = KernelManager(kernel_name=KERNEL_NAME)
    km.start_kernel()
    process = km.provisioner.process  # type: ignore[union-attr]
    try:
        pid = _kernel_pid(km)
        deadline = time.monotonic() + 30
        while not _qemu_children(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        qemu = _qemu_children(pid)
        assert qemu, "the kernel process starts its VM at once"
        run_dirs = _run_dirs_of(qemu)
    finally:
        km.shutdown_kernel(now=False)
    assert process.wait(timeout=10) == 0  # it exited by itself, not by SIGTERM
    assert not any(Path(f"/proc/{q}/cmdline").exists() and
                   Path(f"/proc/{q}/cmdline").read_bytes() for q in qemu)
    assert not any(d.exists() for d in run_dirs)


def _run_dirs_of(qemu: list[int]) -> list[Path]:
    tmp = Path(tempfile.gettempdir())
    return [tmp / d.name for d in tmp.iterdir()
            if d.name.startswith("sandbox-vm-") and (d / "qemu.pid").exists()
            and int((d / "qemu.pid").read_text()) in qemu]


def test_qemu_exits_when_the_kernel_process_is_killed() -> None:
    km, kc = start_kernel()
    pid = _kernel_pid(km)
    qemu = _qemu_children(pid)
    assert qemu
    run_dirs = _run_dirs_of(qemu)
    assert run_dirs
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{q}").exists() for q in qemu) and time.monotonic() < deadline:
        time.sleep(0.1)
    kc.stop_channels()
    km.cleanup_resources()
    assert not any(Path(f"/proc/{q}/cmdline").exists() and
                   Path(f"/proc/{q}/cmdline").read_bytes() for q in qemu)
    # A SIGKILLed kernel cannot clean up; the next VM start sweeps what it left.
    sweep_stale_run_dirs()
    assert not any(d.exists() for d in run_dirs)


def _first_cell(env: dict[str, str], code: str, timeout: float
                ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The reply to, and IOPub messages of, the first cell of a kernel started with ``env``."""
    km = KernelManager(kernel_name=KERNEL_NAME)
    km.start_kernel(env={**os.environ, **env})
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        return run(kc, code, timeout=timeout)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)


def test_a_vm_that_cannot_start_explains_itself_on_the_first_cell() -> None:
    reply, msgs = _first_cell({"SANDBOX_KERNEL_ACCEL": "kvm", "SANDBOX_KERNEL_SNAPSHOTS": "0"},
                              "print('never')", timeout=120)
    assert reply["content"]["status"] == "error"
    assert "sandbox-kernel doctor" in reply["content"]["evalue"]
    assert any(m["msg_type"] == "error" for m in msgs)


def test_an_unexpected_vm_start_failure_answers_the_cell(tmp_path: Path) -> None:
    # Any failure of the VM start must reach the frontend as an error reply; an exception
    # that escaped to ipykernel used to leave the cell waiting for ever.
    (tmp_path / "sitecustomize.py").write_text(
        "import sandbox_kernel.kernel.kernel as k\n"
        "def broken():\n"
        "    raise RuntimeError('injected start failure')\n"
        "k._import_guest_modules = broken\n")
    reply, _ = _first_cell({"PYTHONPATH": str(tmp_path)}, "1 + 1", timeout=30)
    assert reply["content"]["status"] == "error"
    assert "injected start failure" in reply["content"]["evalue"]


def _accepts_tcp(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
        return True
    return False


def test_the_kernel_listens_before_its_heavy_imports(tmp_path: Path) -> None:
    # ipykernel's import is held until the test lets it go: the ports must listen already,
    # and a frontend that connected then must be served without having to connect again.
    go = tmp_path / "go"
    (tmp_path / "sitecustomize.py").write_text(
        "import os, sys, time\n"
        "class HoldIpykernel:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'ipykernel':\n"
        "            sys.meta_path.remove(self)\n"
        "            deadline = time.monotonic() + 60\n"
        f"            while not os.path.exists({str(go)!r}) and time.monotonic() < deadline:\n"
        "                time.sleep(0.02)\n"
        "        return None\n"
        "sys.meta_path.insert(0, HoldIpykernel())\n")
    km = KernelManager(kernel_name=KERNEL_NAME)
    km.start_kernel(env={**os.environ, "PYTHONPATH": str(tmp_path)})
    kc = km.client()
    try:
        ports = [km.shell_port, km.iopub_port, km.stdin_port, km.control_port]
        deadline = time.monotonic() + 20
        while not all(_accepts_tcp(port) for port in ports):
            assert time.monotonic() < deadline, "the ports did not listen while imports waited"
            time.sleep(0.05)
        # No second try within the test: the first connection has to be the one served.
        kc.context.setsockopt(zmq.RECONNECT_IVL, 600_000)
        kc.start_channels()
        time.sleep(0.3)
        go.touch()
        kc.wait_for_ready(timeout=60)
        reply, _ = run(kc, "1 + 1", timeout=120)
        assert reply["content"]["status"] == "ok"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)
