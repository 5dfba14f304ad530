"""The variable explorer between breakpoints: the shell's namespace as debugpy presents a
frame's variables, so that the panel reads the same whether or not a cell is stopped."""

import importlib
import sys
from types import SimpleNamespace
from typing import Any

from sandbox_kernel.guest.cell_names import cell_file_name


class Explorer:
    """Tracks the namespace as the one frame of a pretend thread; its variables, and theirs,
    are then numbered by debugpy's own frame manager."""

    def __init__(self, namespace: dict[str, Any]) -> None:
        importlib.import_module("debugpy.server.api")  # puts its pydevd on sys.path
        from _pydevd_bundle import pydevd_frame_utils
        from _pydevd_bundle.pydevd_api import PyDevdAPI
        from _pydevd_bundle.pydevd_suspended_frames import (
            SuspendedFramesManager,
            _FramesTracker,
        )

        self._manager = SuspendedFramesManager()
        py_db = SimpleNamespace(variable_presentation=PyDevdAPI.VariablePresentation())
        self._tracker = _FramesTracker(self._manager, py_db)
        code = SimpleNamespace(co_filename=cell_file_name("sys._getframe()"), co_name="<module>")
        self._frame = SimpleNamespace(f_code=code, f_globals=namespace, f_locals=namespace,
                                      f_back=None)
        self._tracker.track("thread1", pydevd_frame_utils.create_frames_list_from_frame(
            self._frame))

    def children(self, reference: int) -> list[dict[str, Any]]:
        variable = self._manager.get_variable(reference or id(self._frame))
        return [child.get_var_data() for child in variable.get_children_variables()]


def modules() -> list[dict[str, Any]]:
    """The loaded modules with a source file, as the DAP ``modules`` request lists them."""
    found = []
    for index, module in enumerate(list(sys.modules.values())):
        origin = getattr(getattr(module, "__spec__", None), "origin", None)
        if isinstance(origin, str) and origin.endswith(".py"):
            found.append({"id": index, "name": module.__name__, "path": origin})
    return found
