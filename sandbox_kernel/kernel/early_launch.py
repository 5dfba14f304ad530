"""A restore launched by ``__main__`` before ipykernel is imported: the restored guest does its
first work (the reseed waiting in its port, the worker's warm-up), under TCG some hundreds of
ms, while the kernel's process imports and starts, and so before the first cell comes.

The settings are read here the way the app reads them (the kernelspec's command line, our
config file in Jupyter's folders, the IPython profile's), without the app, which is not
imported yet. The app reads them again and keeps this launch only if they agree
(``VMConfig.launch_settings``); a file or option read differently costs the head start, never
a VM with the wrong settings."""

import logging
import os
import sys
from pathlib import Path

from jupyter_core.paths import jupyter_config_path
from traitlets.config.loader import (
    Config,
    ConfigFileNotFound,
    JSONFileConfigLoader,
    KVArgParseConfigLoader,
    PyFileConfigLoader,
)

from sandbox_kernel.kernel.settings import CONFIG_FILE, SECTION, VMSettings
from sandbox_kernel.vm.config import VMConfig
from sandbox_kernel.vm.restore import HeadStart, launch_early

log = logging.getLogger(__name__)
_PROFILE_FILES = ("ipython_config", "ipython_kernel_config")


def launch_before_imports(argv: list[str]) -> tuple[VMConfig, HeadStart] | None:
    """The settings read from ``argv`` and the config files, and a restore launched with them;
    None when there is nothing to restore or anything went wrong (the app starts the VM)."""
    try:
        config = VMSettings(config=read_config(argv)).vm_config()
        head = launch_early(config)
    except Exception:  # a failed head start must never stop the kernel
        log.debug("launching the restore before the imports failed", exc_info=True)
        return None
    return None if head is None else (config, head)


def taken_over(launched: tuple[VMConfig, HeadStart] | None, config: VMConfig
               ) -> HeadStart | None:
    """The launch, if it was made with the settings the app has read (``config``); otherwise
    it is discarded, and None."""
    if launched is None:
        return None
    launched_with, head_start = launched
    if launched_with.launch_settings() == config.launch_settings():
        return head_start
    log.info("the VM launched before the imports had other settings than the kernel's: "
             "launching it again")
    head_start.discard()
    return None


def read_config(argv: list[str], environ: dict[str, str] | None = None) -> Config:
    """In the app's order: the IPython profile's files, ours, then the command line."""
    environ = dict(os.environ) if environ is None else environ
    config = Config()
    folders = _ipython_config_folders(argv, environ)
    for name in _PROFILE_FILES:
        config.merge(_file_config(name, folders))
    config.merge(_file_config(CONFIG_FILE, jupyter_config_path()))
    ours = [arg for arg in argv if arg.startswith((f"--{SECTION}.", "--VMSettings."))]
    config.merge(KVArgParseConfigLoader(ours, aliases={}, flags={}).load_config())
    return config


def _ipython_config_folders(argv: list[str], environ: dict[str, str]) -> list[str]:
    """Where IPython looks for a profile's config files, the first first: the profile's
    folder, then the environment's and the system's (IPython.core.application)."""
    options = dict(arg[2:].split("=", 1) for arg in argv if arg.startswith("--") and "=" in arg)
    if "profile-dir" in options:
        profile = Path(options["profile-dir"]).expanduser()
    else:
        ipython_dir = options.get("ipython-dir") or environ.get("IPYTHONDIR") or "~/.ipython"
        profile = Path(ipython_dir).expanduser() / f"profile_{options.get('profile', 'default')}"
    system = ["/usr/local/etc/ipython", "/etc/ipython"]
    in_env = os.path.join(sys.prefix, "etc", "ipython")
    return [str(profile), *([in_env] if in_env not in system else []), *system]


def _file_config(name: str, folders: list[str]) -> Config:
    """What the files ``name``.py and ``name``.json in ``folders`` set, the first folder's
    first (as traitlets' Application.load_config_file reads them)."""
    config = Config()
    for folder in reversed(folders):
        for loader_class, suffix in ((PyFileConfigLoader, ".py"), (JSONFileConfigLoader, ".json")):
            loader = loader_class(name + suffix, path=folder, log=log)
            try:
                config.merge(loader.load_config())
            except ConfigFileNotFound:
                continue
    return config
