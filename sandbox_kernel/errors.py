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
    def __init__(self, what: str) -> None:
        super().__init__(
            f"The guest image is not built ({what}). Run `sandbox-kernel image build` "
            "(the first build downloads about 120 MB and takes a minute or two)."
        )


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


class ProtocolError(SandboxError):
    """The guest sent something that is not a valid protocol message."""
