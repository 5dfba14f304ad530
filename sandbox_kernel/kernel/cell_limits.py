"""A cell's limits on the host: its wall-clock time and how much output it may show. The
host enforces both, whatever the guest sends; the messages name the setting to change."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the settings import this module; pydantic's models load later
    from sandbox_kernel import protocol as p

# How long an interrupted cell has to stop before its worker is ended.
END_AFTER_INTERRUPT_S = 3.0


@dataclass(frozen=True)
class CellLimits:
    timeout_s: float = 0.0  # 0: none
    max_output_bytes: int = 0  # 0: none


def shown_size(event: p.Event) -> int:
    """What an output event adds to the cell's output, roughly its encoded size."""
    from sandbox_kernel import protocol as p

    match event:
        case p.OutputChunk(text=text):
            return len(text)
        case p.DisplayData(data=data) | p.ExecuteResult(data=data):
            return sum(len(str(value)) for value in data.values())
        case p.ErrorOutput(ename=ename, evalue=evalue, traceback=traceback):
            return len(ename) + len(evalue) + sum(len(line) for line in traceback)
    return 0


class OutputBudget:
    """Lets a cell's output through up to the cap, then tells the user once. The cap holds
    for all the output the cell is answerable for: what threads it started print after it
    ended counts too (``ended``), or a thread could print under it for ever."""

    def __init__(self, limit: int, notice: Callable[[str], None]) -> None:
        self._limit = limit
        self._left = limit
        self._notice = notice
        self._told = False
        self.ended = False  # set once the cell has its reply: what comes now is its threads'

    def allows(self, event: p.Event) -> bool:
        size = shown_size(event)
        if self._limit <= 0 or size == 0:
            return True
        self._left -= size
        if self._left >= 0:
            return True
        if not self._told:
            self._told = True
            whose = ("this cell's output, with what threads it started printed after it ended,"
                     if self.ended else "this cell's output")
            self._notice(f"{whose} passed the sandbox's limit "
                         f"(c.SandboxKernel.max_output_mb = {self._limit / 2**20:g}); the rest "
                         "is not shown. Raise the setting to see more.")
        return False


class CellTimer:
    """Past the timeout, interrupts the cell; if it has not stopped a few seconds later, ends
    its worker."""

    def __init__(self, timeout_s: float, interrupt: Callable[[], None],
                 end_worker: Callable[[], None], notice: Callable[[str], None]) -> None:
        self._timeout_s = timeout_s
        self._interrupt = interrupt
        self._end_worker = end_worker
        self._notice = notice
        self._task: asyncio.Task[None] | None = None

    def __enter__(self) -> CellTimer:
        if self._timeout_s > 0:
            self._task = asyncio.get_running_loop().create_task(self._watch())
        return self

    def __exit__(self, *_: object) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _watch(self) -> None:
        setting = f"c.SandboxKernel.cell_timeout_s = {self._timeout_s:g}"
        await asyncio.sleep(self._timeout_s)
        self._notice(f"this cell ran past its time limit ({setting}) and was interrupted.")
        with contextlib.suppress(Exception):
            self._interrupt()
        await asyncio.sleep(END_AFTER_INTERRUPT_S)
        self._notice("the interrupted cell did not stop, so its Python process was ended "
                     f"({setting}); earlier variables are gone.")
        with contextlib.suppress(Exception):
            self._end_worker()
