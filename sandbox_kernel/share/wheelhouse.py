"""The wheelhouse: a host folder of wheels that the VM sees read-only at /opt/wheelhouse, where
its pip installs from instead of an index. Served like the notebook's folder, with the same
confinement and limits, but never written and never overlaid."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox_kernel.constants import WHEELHOUSE_PATH
from sandbox_kernel.share.policy import decide
from sandbox_kernel.share.settings import ShareSettings

SETTING = "c.SandboxKernel.wheelhouse"


@dataclass(frozen=True)
class WheelhousePlan:
    settings: ShareSettings | None  # None: asked for, but not shared
    reason: str = ""  # why not, for the user

    def describe(self) -> str:
        if self.settings is None:
            return f"No wheelhouse: {self.reason}"
        return (f"{self.settings.folder} (on the host) is the wheelhouse, {WHEELHOUSE_PATH} "
                "(read-only): %pip install, !pip install and python -m pip install take "
                f"wheels from it ({SETTING}).")


def wheelhouse_plan(setting: str, **limits: Any) -> WheelhousePlan | None:
    """The plan for ``setting`` (a path; ``~`` works, a relative path is taken from the
    kernel's start folder), or None when no wheelhouse is asked for. ``limits``: the shared
    folder's exclusions and read limits (ShareSettings fields), which apply here too."""
    if not setting:
        return None
    exclude = limits.get("exclude", ShareSettings.exclude)
    decision = decide(Path(setting).expanduser(), Path.home(), exclude)
    if not decision.share:
        return WheelhousePlan(None, f"{decision.reason} ({SETTING}).")
    return WheelhousePlan(ShareSettings(folder=decision.folder, **limits))
