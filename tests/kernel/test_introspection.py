"""kernel_info, inspection, completion and is_complete."""

import re

import pytest

from tests.kernel.kernels import (
    Kernel,
    run,
)

pytestmark = [pytest.mark.vm, pytest.mark.timeout(240)]


def test_kernel_info_claims_the_debugger_and_no_subshells(kernel: Kernel) -> None:
    # Subshells do not cross into the VM; the debugger does (tests/kernel/test_debugger.py).
    _, kc = kernel
    info = kc.kernel_info(reply=True, timeout=30)["content"]
    assert info["supported_features"] == ["debugger"]
    assert info["implementation"] == "sandbox-kernel" and info["language_info"]["name"] == "python"


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
