"""IPython's coloured tracebacks, without rebuilding pygments' tables for every one, and
with the exception's notes and an exception group's sub-exceptions.

Otherwise each traceback makes stack_data derive a fresh lexer class (so pygments recompiles
every Python token regex) and IPython build a fresh 256-colour formatter and style, which is
slow under TCG even for a KeyboardInterrupt. The output is unchanged, but for the
notes (``add_note``) and the sub-exceptions of an ``ExceptionGroup`` (what an asyncio
TaskGroup raises), which Debian 12's IPython 8.5 leaves out and Python prints.
"""

import functools
import traceback
from collections.abc import Iterator
from typing import Any

import pygments
import stack_data
import stack_data.core
from IPython.core import ultratb
from pygments.formatters.terminal256 import Terminal256Formatter
from pygments.lexers.python import PythonLexer


class _RangeLexer(PythonLexer):
    """Marks the tokens inside ``ranges`` (the executing node) as ``ExecutingNode``."""

    def __init__(self, ranges: list[tuple[int, int]], **options: Any) -> None:
        super().__init__(**options)
        self.ranges = ranges

    def get_tokens(self, text: str, unfiltered: bool = False) -> Iterator[tuple[Any, str]]:
        offset = 0
        for kind, value in super().get_tokens(text, unfiltered):
            if any(start <= offset < end for start, end in self.ranges):
                kind = kind.ExecutingNode
            offset += len(value)
            yield kind, value


def _highlight(formatter: Any, code: str, ranges: list[tuple[int, int]]) -> list[str]:
    try:
        return str(pygments.highlight(code, _RangeLexer(ranges, stripnl=False),
                                      formatter)).splitlines()
    except Exception:
        return code.splitlines()  # as stack_data does: plain code rather than no traceback


def _sub_exceptions(group: BaseExceptionGroup) -> str:
    """The numbered boxes of sub-exceptions under a group's message, as Python prints them."""
    lines = traceback.format_exception(group)
    for index, line in enumerate(lines):
        if line.startswith("  +-+"):
            return "".join(lines[index:]).rstrip("\n")
    return ""


def _with_notes_and_groups(format_exception: Any) -> Any:
    @functools.wraps(format_exception)
    def format_fully(self: Any, etype: type, evalue: BaseException) -> list[str]:
        lines: list[str] = format_exception(self, etype, evalue)
        if not lines:
            return lines
        # IPython keeps only the first item, so what it lacks goes into that one.
        notes = getattr(evalue, "__notes__", None)
        if isinstance(notes, (list, tuple)):
            lines[0] += "".join("\n" + (note if isinstance(note, str) else repr(note))
                                for note in notes)
        if isinstance(evalue, BaseExceptionGroup):
            lines[0] += "\n" + _sub_exceptions(evalue)
        return lines

    return format_fully


def install() -> None:
    if not hasattr(ultratb.VerboseTB.format_exception, "__wrapped__"):
        ultratb.VerboseTB.format_exception = _with_notes_and_groups(  # type: ignore[method-assign]
            ultratb.VerboseTB.format_exception)
    patches = {
        (stack_data.core, "_pygmented_with_ranges"): _highlight,
        # Both are pure functions of hashable arguments (a style class, a string).
        (stack_data, "style_with_executing_node"):
            functools.cache(stack_data.core.style_with_executing_node),
        (ultratb, "Terminal256Formatter"): functools.cache(Terminal256Formatter),
    }
    for (module, name), replacement in patches.items():
        setattr(module, name, replacement)
