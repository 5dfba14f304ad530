import pytest

from sandbox_kernel import protocol as p
from sandbox_kernel.guest.fd_output import output_line


@pytest.mark.parametrize("text", ["plain\n", 'quotes " and \\ backslashes', "\x00\x1b[31m\t\r",
                                  "ünïcödé ✓ 😀", "x" * 300_000])
def test_an_output_line_is_the_models_encoding(text: str) -> None:
    line = output_line(7, "stderr", text)
    assert line == p.to_json(p.OutputChunk(id=7, name="stderr", text=text))
    assert p.parse_event(line) == p.OutputChunk(id=7, name="stderr", text=text)
