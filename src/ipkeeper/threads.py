"""Names for the daemon's threads, as `top -H`, `ps -L` and /proc show them."""

from __future__ import annotations

import ctypes
import threading

PR_SET_NAME = 15
_libc = ctypes.CDLL(None, use_errno=True)


def name_this_thread(name: str | None = None) -> None:
    """Give the calling OS thread a name (15 characters at most; Python's own by default)."""
    text = (name or threading.current_thread().name)[:15].encode()
    _libc.prctl(PR_SET_NAME, ctypes.c_char_p(text), 0, 0, 0)
