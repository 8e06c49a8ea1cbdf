"""Secret files (the cluster key, the API tokens, the TLS key): private to the daemon's
user or refused."""

from __future__ import annotations

import os
import stat
from pathlib import Path


class SecretFileError(Exception):
    """A secret file that must not be used, with the reason."""


def check_private(path: Path) -> os.stat_result:
    """Refuse `path` unless it exists, is owned by the daemon's user and nobody else may
    read or write it (R30); its stat on success."""
    try:
        st = path.stat()
    except OSError as exc:
        raise SecretFileError(f"{path}: {exc.strerror or exc}") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SecretFileError(
            f"{path}: mode {stat.S_IMODE(st.st_mode):04o} lets others read it; chmod 600"
        )
    if st.st_uid != os.geteuid():
        raise SecretFileError(f"{path}: owned by uid {st.st_uid}, not by the daemon's user")
    return st


def read_secret(path: Path, min_length: int) -> str:
    """The stripped contents of `path`; refused if missing, shorter than `min_length`
    characters, readable by group or others, or owned by another user (R30)."""
    check_private(path)
    try:
        text = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretFileError(f"{path}: {getattr(exc, 'strerror', None) or exc}") from None
    if len(text) < min_length:
        raise SecretFileError(f"{path}: it must hold at least {min_length} characters")
    return text
