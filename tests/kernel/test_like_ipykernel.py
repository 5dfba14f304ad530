"""The sandbox kernel next to stock ipykernel (the reference), on the same cells: tracebacks,
errors, completion and inspection must come out the same."""

import re
from collections.abc import Iterator
from typing import Any

import pytest
from jupyter_client.blocking.client import BlockingKernelClient

from tests.kernel.kernels import Kernel, beside_ipykernel, run

pytestmark = [pytest.mark.vm, pytest.mark.timeout(300)]

CELLS = [
    "x = 1\n1/0",
    "def f(x):\n    return g(x)\ndef g(x):\n    return x / 0\nf(1)",
    "raise KeyboardInterrupt",
    "e = ValueError('bad')\ne.add_note('a note')\nraise e",
    "def h():\n    raise RuntimeError('x') from KeyError('y')\nh()",
    "x = 1 +",
    "%notamagic",
    "d = {'alpha': 1, 'beta': 2}\nd['gamma']",
]
COMPLETIONS = ["d[", "d['a", "%lsm", "pri", "f(1).bit_l"]
INSPECTIONS = [("f", 1), ("d", 0), ("print", 0)]


def _same_pid(text: str) -> str:
    return re.sub(r"ipykernel_\d+", "ipykernel_<pid>", text)


def _errors(kc: BlockingKernelClient, code: str) -> tuple[Any, ...]:
    reply, msgs = run(kc, code)
    content = reply["content"]
    shown = [(m["content"]["ename"], m["content"]["evalue"], m["content"]["traceback"])
             for m in msgs if m["msg_type"] == "error"]
    return content["status"], content.get("ename"), _same_pid(repr(shown))


def _request(kc: BlockingKernelClient, send: Any) -> dict[str, Any]:
    msg_id = send()
    while True:
        reply = kc.get_shell_msg(timeout=60)
        if reply["parent_header"].get("msg_id") == msg_id:
            return dict(reply["content"])


def _answers(kc: BlockingKernelClient) -> list[Any]:
    answers: list[Any] = [_errors(kc, code) for code in CELLS]
    for code in COMPLETIONS:
        reply = _request(kc, lambda code=code: kc.complete(code, len(code)))
        answers.append((code, reply["matches"], reply["cursor_start"], reply["cursor_end"]))
    for name, level in INSPECTIONS:
        reply = _request(kc, lambda name=name, level=level: kc.inspect(name, len(name), level))
        answers.append((name, _same_pid(repr(reply.get("data")))))
    return answers


@pytest.fixture(scope="module")
def kernels() -> Iterator[tuple[Kernel, Kernel]]:
    with beside_ipykernel() as both:
        yield both


def test_the_same_cells_give_the_same_errors_completions_and_help(
        kernels: tuple[Kernel, Kernel]) -> None:
    (_, reference), (_, sandbox) = kernels
    expected, got = _answers(reference), _answers(sandbox)
    for want, have in zip(expected, got, strict=True):
        assert have == want
