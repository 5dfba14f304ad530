"""IPython's coloured tracebacks of frames in files (a library's, a module's), without
rebuilding pygments' tables for every one.

For each such frame stack_data derives a fresh lexer class, so pygments recompiles every
Python token regex, and IPython derives a fresh style class for the failing expression: slow
under TCG. The output is unchanged. A cell's own frames do not come here: under ipykernel's
file names (see cell_names) IPython colours them itself.
"""

import functools
from collections.abc import Iterator
from typing import Any

import pygments
import stack_data
import stack_data.core
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


def install() -> None:
    stack_data.core._pygmented_with_ranges = _highlight  # type: ignore[attr-defined]
    styled = stack_data.core.style_with_executing_node
    # A pure function of hashable arguments: IPython's theme style class, a string. IPython
    # calls it by the package's name for it.
    setattr(stack_data, "style_with_executing_node", functools.cache(styled))  # noqa: B010
