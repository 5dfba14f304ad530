"""Cells are named as ipykernel names them, and an interrupt's traceback ends where it struck."""

import os
import random
import sys

import pytest
from ipykernel import compiler

from sandbox_kernel.cell_hash import CELL_FOLDER, murmur2_x86
from sandbox_kernel.guest import interrupts
from sandbox_kernel.guest.cell_names import IpykernelNamedCompiler, cell_file_name


def _texts() -> list[str]:
    rng = random.Random(15)
    letters = "ab% \n\té中😀"
    texts = ["", "1+1", "x = 1 +", "def f(x):\n    return g(x)\n"]
    texts += ["".join(rng.choice(letters) for _ in range(n)) for n in range(1, 40)]
    return [*texts, "".join(rng.choice(letters) for _ in range(3001))]


@pytest.mark.parametrize("text", _texts())
def test_the_hash_and_the_name_are_ipykernel_s(text: str) -> None:
    seed = compiler.get_tmp_hash_seed()
    assert murmur2_x86(text.encode(), seed) == compiler.murmur2_x86(text, seed)
    # ipykernel's folder is named by its pid; the guest's is one the host knows (cell_hash).
    name = cell_file_name(text)
    assert os.path.basename(name) == os.path.basename(compiler.get_file_name(text))
    assert os.path.dirname(name) == CELL_FOLDER


def test_the_compiler_names_cells_by_their_raw_code() -> None:
    name = IpykernelNamedCompiler().get_code_name("1/0", "1/0\n", 3)
    assert name == cell_file_name("1/0")


def _interrupted_in_guest_code() -> KeyboardInterrupt:
    def users_code() -> None:
        guest_code = compile("raise KeyboardInterrupt", interrupts.__file__, "exec")
        exec(guest_code)  # a frame of the worker's, as its SIGINT handler is

    try:
        users_code()
    except KeyboardInterrupt as error:
        return error
    raise AssertionError("not raised")


def _frames(error: BaseException) -> list[str]:
    names, entry = [], error.__traceback__
    while entry is not None:
        names.append(entry.tb_frame.f_code.co_name)
        entry = entry.tb_next
    return names


def test_an_interrupt_loses_the_worker_s_frames_at_its_end() -> None:
    error = _interrupted_in_guest_code()
    assert _frames(error)[-2:] == ["users_code", "<module>"]
    interrupts.drop_worker_frames(error)
    assert _frames(error)[-1] == "users_code"


def test_other_exceptions_keep_every_frame() -> None:
    try:
        exec(compile("raise ValueError", interrupts.__file__, "exec"))
    except ValueError:
        error = sys.exc_info()[1]
    assert error is not None
    before = _frames(error)
    interrupts.drop_worker_frames(error)
    assert _frames(error) == before and before[-1] == "<module>"
