"""The hash that names a cell's file, ``/tmp/ipykernel_0/<hash>.py``, as ipykernel names it
(``<tmp>/ipykernel_<pid>/<hash>.py``): the guest compiles cells under that name, and the host's
debugger gives it to frontends."""

import struct

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF
SEED = 0xC70F6907  # ipykernel's get_tmp_hash_seed()
# The folder of the guest's cells. Not named by the worker's pid, as ipykernel names its own:
# the host must give it to a frontend before the debugger starts (JupyterLab reads it from its
# first debugInfo, and names each cell's editor by it), when it cannot ask the VM. 0 is no
# process's pid.
CELL_FOLDER = "/tmp/ipykernel_0"


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


def cell_hash(code: str) -> int:
    return murmur2_x86(code.encode("utf-8"), SEED)
