"""A KeyboardInterrupt's traceback without the worker's own frames, as ipykernel shows it.

The worker raises it from its SIGINT handler, or once an event has gone out, so the traceback
ends in the worker's code; ipykernel's ends on the interrupted line, since Python's default
handler is not a Python frame.
"""

import os

_GUEST_CODE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def drop_worker_frames(error: BaseException | None) -> None:
    if not isinstance(error, KeyboardInterrupt):
        return
    last_theirs = None
    entry = error.__traceback__
    while entry is not None:
        if not entry.tb_frame.f_code.co_filename.startswith(_GUEST_CODE):
            last_theirs = entry
        entry = entry.tb_next
    if last_theirs is not None:
        last_theirs.tb_next = None
