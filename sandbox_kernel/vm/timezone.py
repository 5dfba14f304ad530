"""The host's time zone as a POSIX TZ string, which the guest's C library reads without any
zoneinfo files: the VM then shows the local time a local kernel would."""

import os
import re
from pathlib import Path

# A zone abbreviation (three letters or more, or <+05>), then offsets and rules.
_POSIX_TZ = re.compile(r"(?:[A-Za-z]{3,}|<[A-Za-z0-9+-]{3,}>)[A-Za-z0-9<>+\-,./:]*")
_MAX_LENGTH = 64  # the protocol's limit
_ZONEINFO = Path("/usr/share/zoneinfo")


def _posix(rule: str) -> str:
    return rule if len(rule) <= _MAX_LENGTH and _POSIX_TZ.fullmatch(rule) else ""


def tzif_rule(path: Path) -> str:
    """The POSIX rule at the end of a version 2+ TZif file, or "" if it has none."""
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    if not data.startswith(b"TZif") or data[4:5] < b"2" or not data.endswith(b"\n"):
        return ""
    return _posix(data[data.rfind(b"\n", 0, len(data) - 1) + 1:-1].decode("ascii", "replace"))


def host_timezone(environ: dict[str, str] | None = None) -> str:
    """TZ for the guest ("" when the host's zone cannot be read: the guest keeps UTC)."""
    tz = (os.environ if environ is None else environ).get("TZ", "").removeprefix(":")
    if not tz:
        return tzif_rule(Path("/etc/localtime"))
    zone_file = Path(tz) if tz.startswith("/") else _ZONEINFO / tz
    if zone_file.is_file():
        return tzif_rule(zone_file)
    return _posix(tz)
