"""What a notebook can see of its kernel, the sandbox kernel next to stock ipykernel: the
signs libraries read to tell that they run in a notebook, messages a library publishes
itself, an interrupted cell's traceback, and getpass() when the frontend has no stdin."""

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.kernel.kernels import Kernel, beside_ipykernel, iopub_until_idle, run

pytestmark = [pytest.mark.vm, pytest.mark.timeout(300)]

# What libraries test, each written out here: tqdm.autonotebook looks for ipykernel.zmqshell
# in sys.modules; plotly tests isinstance against ZMQInteractiveShell; others compare the
# class's name or str(type(...)), or look for IPKernelApp in the config; ipywidgets reads
# ipykernel.version_info and takes the parent request from the kernel.
DETECTION = """\
import sys
ip = get_ipython()
import ipykernel.zmqshell
print(type(ip).__name__, str(type(ip)), isinstance(ip, ipykernel.zmqshell.ZMQInteractiveShell))
print('IPKernelApp' in ip.config, 'ipykernel.zmqshell' in sys.modules)
print(ipykernel.version_info >= (6, 18), hasattr(ip.kernel, 'session'))
print(hasattr(ip.kernel, 'iopub_socket'), ip.kernel.get_parent()['header']['msg_id'])
"""

# As libraries publish by themselves (a progress bar's display, then its update).
PUBLISH = """\
k = get_ipython().kernel
k.session.send(k.iopub_socket, 'display_data',
               {'data': {'text/plain': 'bar 0%'}, 'metadata': {},
                'transient': {'display_id': 'bar'}}, parent=k.get_parent())
k.session.send(k.iopub_socket, 'update_display_data',
               {'data': {'text/plain': 'bar 100%'}, 'metadata': {},
                'transient': {'display_id': 'bar'}}, parent=k.get_parent())
sent = k.session.send(k.iopub_socket, 'stream', {'name': 'stdout', 'text': 'done\\n'},
                      parent=k.get_parent())
print(sorted(sent), sent['msg_type'], sent['content'])
"""

INTERRUPTED = [
    "import time\ntime.sleep(60)",
    "while True:\n    pass",
    "def spin():\n    while True:\n        pass\n\nspin()",
]


@pytest.fixture(scope="module")
def kernels() -> Iterator[tuple[Kernel, Kernel]]:
    with beside_ipykernel() as both:
        yield both


def _each(kernels: tuple[Kernel, Kernel]) -> list[Kernel]:
    return list(kernels)


def _outputs(msgs: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    return [(m["msg_type"], m["content"]) for m in msgs if m["msg_type"] != "execute_input"]


def test_libraries_take_it_for_a_notebook_kernel(kernels: tuple[Kernel, Kernel]) -> None:
    seen = []
    for _, kc in _each(kernels):
        msg_id = kc.execute(DETECTION)
        text = "".join(m["content"]["text"] for m in iopub_until_idle(kc, msg_id)
                       if m["msg_type"] == "stream")
        seen.append(text.replace(msg_id, "<this request>"))
    assert seen[1] == seen[0]
    assert seen[0].split() == [
        "ZMQInteractiveShell", "<class", "'ipykernel.zmqshell.ZMQInteractiveShell'>", "True",
        "True", "True", "True", "True", "True", "<this", "request>"]


def test_what_a_library_publishes_itself_is_published(kernels: tuple[Kernel, Kernel]) -> None:
    (_, reference), (_, sandbox) = kernels
    expected, got = (_outputs(run(kc, PUBLISH)[1]) for kc in (reference, sandbox))
    assert got == expected
    assert [kind for kind, _ in got] == ["display_data", "update_display_data", "stream", "stream"]


def _interrupted(kernel: Kernel, code: str) -> tuple[Any, ...]:
    km, kc = kernel
    msg_id = kc.execute(code)
    time.sleep(2)
    km.interrupt_kernel()
    reply = kc.get_shell_msg(timeout=60)
    assert reply["parent_header"]["msg_id"] == msg_id
    errors = [m["content"] for m in iopub_until_idle(kc, msg_id) if m["msg_type"] == "error"]
    return reply["content"]["ename"], reply["content"]["evalue"], _without_counts(errors)


def _without_counts(errors: list[dict[str, Any]]) -> list[tuple[str, str, list[str]]]:
    # The execution counts differ (In[n]); all else, frame lines included, must not.
    return [(e["ename"], e["evalue"], [re.sub(r"In\[\d+\]", "In[n]", line)
                                       for line in e["traceback"]]) for e in errors]


@pytest.mark.parametrize("code", INTERRUPTED)
def test_an_interrupted_cell_s_traceback_is_ipykernel_s(
        kernels: tuple[Kernel, Kernel], code: str) -> None:
    reference, sandbox = kernels
    expected = _interrupted(reference, code)
    got = _interrupted(sandbox, code)
    assert got == expected
    assert "sandbox_kernel" not in repr(got)


def test_getpass_without_stdin_names_getpass(kernels: tuple[Kernel, Kernel]) -> None:
    code = "import getpass\ngetpass.getpass()"
    seen = []
    for _, kc in _each(kernels):
        reply, msgs = run(kc, code, allow_stdin=False)
        error = next(m["content"] for m in msgs if m["msg_type"] == "error")
        seen.append((reply["content"]["ename"], error["ename"], error["evalue"]))
    assert seen[1] == seen[0]
    assert seen[0][2] == "getpass was called, but this frontend does not support input requests."


def test_what_a_cell_may_not_publish_is_not_published(kernels: tuple[Kernel, Kernel]) -> None:
    # ipykernel would send these; the sandbox publishes only what a cell's output may be.
    _, (_, sandbox) = kernels
    code = ("k = get_ipython().kernel\n"
            "k.session.send(k.iopub_socket, 'status', {'execution_state': 'idle'})\n"
            "k.session.send(k.iopub_socket, 'execute_input', {'code': 'x', 'execution_count': 9})\n"
            "k.session.send(k.iopub_socket, 'shutdown_reply', {'restart': False})\n"
            "k.session.send(object(), 'stream', {'name': 'stdout', 'text': 'not on IOPub'})\n"
            "k.send_response(k.iopub_socket, 'stream', {'name': 'stdout', 'text': 'mine\\n'})\n"
            "None")
    msg_id = sandbox.execute(code)
    msgs = iopub_until_idle(sandbox, msg_id)
    assert _outputs(msgs) == [("stream", {"name": "stdout", "text": "mine\n"})]


def test_getpass_asks_as_ipykernel_asks(kernels: tuple[Kernel, Kernel]) -> None:
    seen = []
    for _, kc in _each(kernels):
        msg_id = kc.execute("import getpass\nlen(getpass.getpass())", allow_stdin=True)
        seen.append(kc.get_stdin_msg(timeout=60)["content"])
        kc.input("hunter2")
        iopub_until_idle(kc, msg_id)
    assert seen[1] == seen[0] == {"prompt": "", "password": True}
