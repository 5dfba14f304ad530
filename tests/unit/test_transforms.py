from typing import Any

import pytest
from IPython.core import inputtransformer2
from IPython.core.inputtransformer2 import TokenTransformBase, TransformerManager

from sandbox_kernel.guest.transforms import QuickTransformerManager

CELLS = [
    "1+1", "x = 1\ny = x * 2\ny", "def f(a, b):\n    return a / b\n", "print('100%')",
    "%time x = 1", "%%bash\necho hi", "!ls -l", "files = !ls", "x = %pwd", "len?", "len??",
    "?len", ",my_func a b", ";my_func a b", "/my_func a b", "  %ls", "a = [1,\n  2]\n",
    "s = '''\n/not an escape\n'''", "if True:\n    !echo in block\n", "x = (1 +\n     2)",
    ">>> 1 + 1", "In [1]: 2 + 2", "   x = 3", "\n\n\nx = 4", "f'{a!r}'", "a if b else c",
]


@pytest.mark.parametrize("cell", CELLS)
def test_same_result_as_ipython(cell: str) -> None:
    assert QuickTransformerManager().transform_cell(cell) == \
        TransformerManager().transform_cell(cell)  # type: ignore[no-untyped-call]


def test_plain_code_is_not_tokenized(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_tokens(lines: list[str]) -> None:
        raise AssertionError(f"tokenized {lines!r}")

    monkeypatch.setattr(inputtransformer2, "make_tokens_by_line", no_tokens)
    cell = "import math\ndef area(r):\n    return math.pi * r ** 2\narea(2)\n"
    assert QuickTransformerManager().transform_cell(cell) == cell


def test_added_token_transformers_still_run() -> None:
    class Shout(TokenTransformBase):
        @classmethod
        def find(cls, tokens_by_line: list[list[Any]]) -> "Shout | None":
            for line in tokens_by_line:
                for token in line:
                    if token.string == "shout":
                        return cls(token.start)
            return None

        def transform(self, lines: list[str]) -> list[str]:
            return [line.replace("shout", "print") for line in lines]

    manager = QuickTransformerManager()
    manager.token_transformers.append(Shout)
    assert manager.transform_cell("shout(1)") == "print(1)\n"
