"""Errors a user can act on: each says what happened and what to run."""


class SandboxError(Exception):
    """Base class; ``str()`` is a message fit to show a user."""


class QemuNotFound(SandboxError):
    def __init__(self, binary: str) -> None:
        super().__init__(
            f"QEMU was not found ({binary!r} is not on PATH). "
            "Install it with `apt-get install qemu-system-x86`, then run `sandbox-kernel doctor`."
        )


class ImageNotBuilt(SandboxError):
    def __init__(self, name: str, folder: object) -> None:
        how = ("`sandbox-kernel image build` (the first build downloads about 110 MB and "
               "takes a minute or two)" if name == "default" else
               f"`sandbox-kernel image build --recipe {name}` for a built-in recipe, or "
               "`--recipe path/to/recipe.toml` for yours; `sandbox-kernel image list` shows "
               "the images built")
        super().__init__(f"The guest image {name!r} is not built (nothing at {folder}). "
                         f"Run {how}.")


class ImageDamaged(SandboxError):
    def __init__(self, name: str, folder: object, what: str) -> None:
        again = "" if name == "default" else f" --recipe {name}"
        super().__init__(f"The guest image {name!r} at {folder} is damaged: {what}. Build it "
                         f"again with `sandbox-kernel image build{again} --force`.")


class ImageBuildError(SandboxError):
    pass


class VMStartError(SandboxError):
    """The VM did not come up; carries the tail of its console log."""

    def __init__(self, reason: str, console_log: str = "", log_path: str | None = None) -> None:
        lines = [f"The sandbox VM did not start: {reason}"]
        if console_log:
            lines.append("Last lines of the guest console:")
            lines.extend("    " + line for line in console_log.splitlines()[-25:])
        if log_path:
            lines.append(f"Full console log kept at {log_path}")
        lines.append("Run `sandbox-kernel doctor` to check QEMU, the accelerator and the image.")
        super().__init__("\n".join(lines))
        self.reason = reason


class VMDied(SandboxError):
    def __init__(self, detail: str) -> None:
        super().__init__(
            f"The sandbox VM stopped unexpectedly ({detail}). "
            "Restart the kernel to get a fresh VM; `sandbox-kernel doctor` checks the set-up."
        )


class VMUnresponsive(VMDied):
    """The guest agent did not answer what it must answer at once (an interrupt, the end of
    a worker); the kernel stops the VM."""

    def __init__(self, detail: str) -> None:
        SandboxError.__init__(
            self, f"The sandbox VM stopped answering ({detail}), so it was stopped. "
            "Restart the kernel to get a fresh VM; `sandbox-kernel doctor` checks the set-up.")


class ProtocolError(SandboxError):
    """The guest sent something that is not a valid protocol message."""
