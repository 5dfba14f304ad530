"""Cells compiled under file names like ipykernel's (``/tmp/ipykernel_<pid>/<hash>.py``):
``/tmp/ipykernel_0/<hash>.py``, a folder the host knows without asking (see cell_hash).

The name shows where a local kernel shows it (a SyntaxError's message, ``obj??``, Python's own
tracebacks), and it decides how IPython 9 formats a cell's frames: a ``.py`` file that does not
exist takes its quick path (every line up to the failing one, coloured by IPython), where an
``<ipython-input-…>`` name takes stack_data's (a window of lines, coloured by pygments, the
failing expression highlighted). The hash is ipykernel's MurmurHash2 with its seed, so the
names are a local kernel's but for the folder.
"""

from IPython.core.compilerop import CachingCompiler

from sandbox_kernel.cell_hash import CELL_FOLDER, cell_hash


def cell_folder() -> str:
    return CELL_FOLDER


def cell_file_name(code: str) -> str:
    return f"{cell_folder()}/{cell_hash(code)}.py"


class IpykernelNamedCompiler(CachingCompiler):
    def get_code_name(self, raw_code: str, transformed_code: str, number: int) -> str:
        return cell_file_name(raw_code)
