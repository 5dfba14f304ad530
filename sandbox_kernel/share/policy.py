"""Which folder may be shared with a VM, and which names in it never are."""

import fnmatch
from dataclasses import dataclass
from pathlib import Path

# Names (matched against every path component, case-sensitively) that hold credentials in
# the usual places: key stores, cloud and registry logins, dotenv files, private keys.
# ".env.*" hides ".env.example" too: a harmless price for hiding ".env.production".
DEFAULT_EXCLUDES: tuple[str, ...] = (
    ".ssh", ".gnupg", ".aws", ".azure", ".gcloud", ".kube", ".docker", ".password-store",
    ".netrc", ".git-credentials", ".pypirc", ".npmrc", ".vault-token",
    ".env", ".env.*", "*.pem", "*.key", "*.p12", "*.pfx", "*.keystore",
    "id_rsa*", "id_dsa*", "id_ecdsa*", "id_ed25519*",
)


@dataclass(frozen=True)
class ShareDecision:
    folder: Path  # resolved
    share: bool
    reason: str  # why not, for the user; empty when shared


def decide(folder: Path, home: Path, exclude: tuple[str, ...] = DEFAULT_EXCLUDES
           ) -> ShareDecision:
    folder, home = folder.resolve(), home.resolve()

    def refuse(reason: str) -> ShareDecision:
        return ShareDecision(folder, False, f"{folder} is not shared with the VM: {reason}")

    if not folder.is_dir():
        return refuse("it is not a folder")
    if folder == Path(folder.anchor):
        return refuse("it is the root of the file system")
    if folder == home:
        return refuse("it is your home folder; start the kernel in a project folder")
    if folder in home.parents:
        return refuse("it holds your home folder")
    secret = next((part for part in folder.parts
                   if any(fnmatch.fnmatchcase(part, p) for p in exclude)), None)
    if secret is not None:
        return refuse(f"it is inside {secret}, which may hold credentials")
    return ShareDecision(folder, True, "")
