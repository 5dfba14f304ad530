"""IPython's input transforms, without tokenizing cells that none of its token transforms
could change.

IPython tokenizes each cell with the pure-Python tokenizer, at least once, only to find the
IPython syntax (``%magic``, ``!cmd``, ``obj?``, ``x = %magic``, ``,autoquote``) that most cells
do not have; under TCG that is a noticeable part of a short cell.
"""

import re

from IPython.core.inputtransformer2 import TransformerManager

# Every token transform needs one of these: a %, ! or ? anywhere, or an escape character
# first on a line (the autocall escapes , ; /). A superset, so a match only means "maybe".
_MAY_TRANSFORM = re.compile(r"[%!?]|^\s*[,;/]", re.MULTILINE)


class QuickTransformerManager(TransformerManager):
    def __init__(self) -> None:
        super().__init__()
        self._stock = list(self.token_transformers)

    def do_token_transforms(self, lines: list[str]) -> list[str]:
        if self.token_transformers == self._stock and not _MAY_TRANSFORM.search("".join(lines)):
            return lines
        return super().do_token_transforms(lines)  # type: ignore[no-any-return]
