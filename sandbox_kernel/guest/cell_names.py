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
import struct
import tempfile

from IPython.core.compilerop import CachingCompiler

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF
_SEED = 0xC70F6907  # ipykernel's get_tmp_hash_seed()


def murmur2_x86(data: bytes, seed: int) -> int:
    """MurmurHash2, 32-bit, as ipykernel computes it, a word at a time rather than a byte."""
    length = len(data)
    h = seed ^ length
    end = length & ~3
    for (k,) in struct.iter_unpack("<I", data[:end]):
        k = (k * _M) & _MASK
        k ^= k >> 24
        h = ((h * _M) & _MASK) ^ ((k * _M) & _MASK)
    if length & 3:
        h = ((h ^ int.from_bytes(data[end:], "little")) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)


@functools.cache
def _folder(pid: int) -> str:
    return os.path.join(tempfile.gettempdir(), f"ipykernel_{pid}")


def cell_file_name(code: str) -> str:
    return f"{_folder(os.getpid())}/{murmur2_x86(code.encode('utf-8'), _SEED)}.py"


class IpykernelNamedCompiler(CachingCompiler):
    def get_code_name(self, raw_code: str, transformed_code: str, number: int) -> str:
        return cell_file_name(raw_code)
