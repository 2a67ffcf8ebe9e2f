"""Reading a secret (an MQTT password, a private key) from a file only its owner can open.

A secret file that the group or others may read has probably been copied around or shared already: it is
refused with its path and mode, so the operator fixes the permissions rather than the agent leaking on.
Files systemd hands over with `LoadCredential=` are 0400 and pass: a secret named without a folder (say
`password_file = "mqtt-password"`) is read from `$CREDENTIALS_DIRECTORY` when the unit passed a credential of
that name.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


class SecretFileError(Exception):
    """A secret file that cannot be read or is open to others; says which file and why."""


def credential(path: Path) -> Path | None:
    """The systemd credential a bare file name stands for, if the unit passed one by that name (read when asked,
    so the environment is the one the agent runs in)."""
    folder = os.environ.get("CREDENTIALS_DIRECTORY")
    if not folder or path.is_absolute() or path.name != str(path):
        return None
    found = Path(folder) / path.name
    return found if found.is_file() else None


def read_private(path: Path, what: str) -> bytes:
    """The file's bytes; `what` (the config key) names it in any error."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise SecretFileError(
                f"{what}: {path} has mode {mode:04o}: group or others may open it; "
                f"expected the owner only (chmod 600 {path})"
            )
        return path.read_bytes()
    except OSError as exc:
        raise SecretFileError(f"{what}: {path}: {exc.strerror}") from None
