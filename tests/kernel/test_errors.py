"""Errors: replies, tracebacks as ipykernel formats them, and a worker that dies."""

import re

import pytest

from tests.kernel.kernels import (
    Kernel,
    run,
    stdout_of,
    without_input,
)

pytestmark = [pytest.mark.vm, pytest.mark.timeout(240)]


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


def test_error_traceback_is_formatted_like_ipykernel(kernel: Kernel) -> None:
    _, kc = kernel
    reply, msgs = run(kc, "def g():\n    return 1 / 0\ng()")
    errors = [m["content"] for m in msgs if m["msg_type"] == "error"]
    assert len(errors) == 1
    plain = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(reply["content"]["traceback"]))
    assert "ZeroDivisionError" in plain and "----> 3 g()" in plain
    assert re.search(r"Cell In\[\d+\], line 3\n", plain)
    # A cell's lines up to the failing one, keywords coloured, as IPython 9 shows a frame of
    # ipykernel's cell files (test_like_ipykernel compares the two kernels exactly).
    assert "      1 def g():\n      2     return 1 / 0\n----> 3 g()" in plain
    assert "\x1b[38;5;28;01mdef\x1b[39;00m" in "".join(reply["content"]["traceback"])


def test_tracebacks_show_notes_and_groups_and_survive_a_failing_str(kernel: Kernel) -> None:
    _, kc = kernel
    reply, _ = run(kc, "e = ValueError('base')\ne.add_note('first note')\n"
                       "e.add_note('second note')\nraise e")
    plain = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(reply["content"]["traceback"]))
    assert plain.endswith("ValueError: base\nfirst note\nsecond note")
    assert plain.count("\nfirst note\n") == 1
    # What an asyncio TaskGroup raises: IPython 9 prints an exception group in Python's format
    # on stderr and shows no error output, which is what ipykernel's users see.
    reply, msgs = run(kc, "import asyncio\nasync def boom():\n    raise KeyError('in a task')\n"
                          "async with asyncio.TaskGroup() as group:\n    group.create_task(boom())")
    assert reply["content"]["ename"] == "ExceptionGroup"
    assert not [m for m in msgs if m["msg_type"] == "error"]
    stderr = "".join(m["content"]["text"] for m in msgs if m["msg_type"] == "stream")
    plain = "\n".join(reply["content"]["traceback"])
    for text in (stderr, plain):
        assert "+---------------- 1 ----------------" in text and "KeyError: 'in a task'" in text
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
