"""Cells compiled under the file names ipykernel gives them: ``/tmp/ipykernel_<pid>/<hash>.py``.

The name shows where a local kernel shows it (a SyntaxError's message, ``obj??``, Python's own
tracebacks), and it decides how IPython 9 formats a cell's frames: a ``.py`` file that does not
exist takes its quick path (every line up to the failing one, coloured by IPython), where an
``<ipython-input-…>`` name takes stack_data's (a window of lines, coloured by pygments, the
failing expression highlighted). The hash is ipykernel's MurmurHash2 with its seed, so the
names are the same as a local kernel's.
"""

import functools
import os
import tempfile

from IPython.core.compilerop import CachingCompiler

from sandbox_kernel.cell_hash import cell_hash


@functools.cache
def _folder(pid: int) -> str:
    return os.path.join(tempfile.gettempdir(), f"ipykernel_{pid}")


def cell_folder() -> str:
    return _folder(os.getpid())


def cell_file_name(code: str) -> str:
    return f"{cell_folder()}/{cell_hash(code)}.py"


class IpykernelNamedCompiler(CachingCompiler):
    def get_code_name(self, raw_code: str, transformed_code: str, number: int) -> str:
        return cell_file_name(raw_code)
