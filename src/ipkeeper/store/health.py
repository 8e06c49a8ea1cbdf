"""Can this server's database be written? The alarm of a full (or failing) disk.

A write that fails because of the disk (full, read-only, an I/O error), not
because of what was written, is a store failure. It must never stop a
safety action (a check, a local recovery, a takeover, a give-up): the
database keeps what it can (store/db.py, `Keeper`), the repository keeps
the states in memory and the event log keeps its events in memory, both
written as soon as a write succeeds again. Meanwhile the failure is an
alarm (`status`, metrics), and its end is an event.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

# SQLite's primary result codes that say the disk, not the data, is the problem.
STORE_FAILURES = frozenset(
    {sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN}
)


def is_store_failure(exc: BaseException) -> bool:
    """True when `exc` is SQLite saying the disk cannot take the write."""
    code = getattr(exc, "sqlite_errorcode", None)
    return (
        isinstance(exc, sqlite3.Error) and isinstance(code, int) and code & 0xFF in STORE_FAILURES
    )


class StoreUnavailable(Exception):
    """A write that could not be made because of the disk; nothing of it was stored.

    Carries a field, a reason and an HTTP status like the engine's refusals, so
    that an administrator is told in one line (503), not with a 500."""

    field = "store"
    status = 503

    def __init__(self, reason: str) -> None:
        super().__init__(f"store: {reason}")
        self.reason = reason


class Keeper(Protocol):
    """What holds some of a transaction's writes in memory when the disk refuses them."""

    def can_keep(self) -> bool:
        """True when everything this keeper saw the failed transaction write can be kept
        in memory and written later (states and events: yes; definitions: no)."""

    def keep(self) -> None:
        """Keep in memory what the failed transaction wrote, to be written later."""


@dataclass(frozen=True)
class Recovery:
    """A store failure that ended: how long it lasted and what it was."""

    seconds: float
    error: str
    failures: int


class StoreHealth:
    """Whether the last write succeeded, since when it fails, and how often it failed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.failing_since: float | None = None  # Unix time of the first failure of this spell
        self.error = ""
        self.failures = 0  # failed writes since the daemon started
        self._spell = 0  # failed writes in the current spell
        self._recovered: Recovery | None = None

    @property
    def writable(self) -> bool:
        """False from a failed write until the next write that succeeds."""
        return self.failing_since is None

    def failed(self, exc: BaseException) -> None:
        """A write failed because of the disk."""
        self.failures += 1
        self._spell += 1
        self.error = str(exc)
        if self.failing_since is None:
            self.failing_since = time.time()

    def succeeded(self) -> None:
        """A write succeeded: a spell of failures, if any, is over."""
        if self.failing_since is None:
            return
        self._recovered = Recovery(time.time() - self.failing_since, self.error, self._spell)
        self.failing_since = None
        self._spell = 0

    def take_recovery(self) -> Recovery | None:
        """The spell of failures that ended since the last call, if one did (once)."""
        found, self._recovered = self._recovered, None
        return found

    def reason(self) -> str:
        """One line for an alarm or a refusal."""
        return f"cannot write {self.path} ({self.error})"
