"""A value read from a file and read again when the file changes (no restart needed).

Like the tunables file (config/tunables.py), the file is stat()ed at each use
and parsed again only when its inode, size, times, mode or owner changed, so
an edit, a `mv` over it or a chmod is seen at the next use. What happens when
the new contents are unusable is the caller's choice: keep the last good value
(the cluster key: dropping it would cut every comm path) or fall back to a
safe one (the API tokens: fail closed).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")

log = logging.getLogger("ipkeeper.config")

Stamp = tuple[int, int, int, int, int, int]


def stamp(path: Path) -> Stamp | None:
    """What identifies a version of the file: inode, size, mtime, ctime, mode and owner."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode, st.st_uid)


class Watched(Generic[T]):
    """`parse(path)` now, and again whenever the file has changed since.

    The first parse happens in the constructor and its exception propagates
    (a daemon refuses to start on an unusable file). A later failure is logged
    once per version of the file, given to `on_error`, and answered with
    `fallback(previous)`: the previous value by default.
    """

    def __init__(
        self,
        path: Path,
        parse: Callable[[Path], T],
        on_error: Callable[[str], None] | None = None,
        fallback: Callable[[T], T] | None = None,
    ) -> None:
        self.path = path
        self._parse = parse
        self._on_error = on_error
        self._fallback = fallback
        self._lock = threading.Lock()
        self._stamp = stamp(path)
        self._value = parse(path)
        self.error: str | None = None  # why the file in force is not what is used, if it is not

    def get(self) -> T:
        """The value for the file as it is now."""
        now = stamp(self.path)
        with self._lock:
            if now != self._stamp:
                self._stamp = now
                self._reload()
            return self._value

    def _reload(self) -> None:
        try:
            self._value = self._parse(self.path)
            self.error = None
        except Exception as exc:
            self.error = str(exc)
            kept = "keeping what was in use" if self._fallback is None else "refusing it"
            log.error("%s: %s; %s", self.path, exc, kept)
            if self._fallback is not None:
                self._value = self._fallback(self._value)
            if self._on_error is not None:
                self._on_error(str(exc))
