"""IPython's terminal front end, imported only if something uses it.

``import IPython`` imports ``IPython.terminal.embed`` for its ``embed()`` shortcut, and with it
prompt_toolkit and the terminal shell, a large share of the worker's start under TCG, for a
front end a kernel never shows. A stand-in takes that module's place in ``sys.modules``; the
first lookup of anything else on it, or a call of ``embed()``, imports the real module.
"""

import importlib
import sys
import types
from typing import Any

_NAME = "IPython.terminal.embed"


def _real() -> types.ModuleType:
    if isinstance(sys.modules.get(_NAME), _StandIn):
        del sys.modules[_NAME]
    return importlib.import_module(_NAME)


class _StandIn(types.ModuleType):
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # the import system probing (__path__, __spec__ ...)
            raise AttributeError(name)
        return getattr(_real(), name)


def _embed(*args: Any, **kwargs: Any) -> Any:
    return _real().embed(*args, **kwargs)


def install() -> None:
    if "IPython" in sys.modules:
        return  # too late to matter
    stand_in = _StandIn(_NAME)
    setattr(stand_in, "embed", _embed)  # noqa: B010 - a module attribute, set like one
    sys.modules[_NAME] = stand_in
