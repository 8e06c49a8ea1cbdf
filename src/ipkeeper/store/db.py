"""The per-server SQLite database: WAL, full sync, foreign keys, versioned schema.

Every change that matters is made in a transaction (`with db.transaction():`)
and committed before it is reported, so a crash at any instant leaves either
the old or the new state (R31). The schema carries a version; `open_db`
checks that the database is sound (store/soundness.py) and applies the
migrations it is missing, each in its own transaction.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from ipkeeper.store import soundness
from ipkeeper.store.health import Keeper, StoreHealth, StoreUnavailable, is_store_failure

log = logging.getLogger("ipkeeper.store")

SCHEMA_VERSION = 2

MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE resources(
        id          TEXT PRIMARY KEY,
        kind        TEXT NOT NULL,
        switchback  TEXT NOT NULL DEFAULT 'intelligent'
                    CHECK (switchback IN ('intelligent', 'automatic')),
        version     INTEGER NOT NULL DEFAULT 1,
        created_at  REAL NOT NULL,
        updated_at  REAL NOT NULL
    );
    CREATE TABLE instances(
        resource_id TEXT NOT NULL REFERENCES resources(id) ON DELETE CASCADE,
        server      TEXT NOT NULL,
        tag         TEXT NOT NULL,
        priority    INTEGER NOT NULL CHECK (priority BETWEEN 1 AND 999),
        props       TEXT NOT NULL,
        PRIMARY KEY (resource_id, server),
        UNIQUE (resource_id, priority),
        UNIQUE (server, tag)
    );
    CREATE TABLE dependencies(
        parent_id   TEXT NOT NULL REFERENCES resources(id) ON DELETE CASCADE,
        child_id    TEXT NOT NULL REFERENCES resources(id) ON DELETE CASCADE,
        PRIMARY KEY (parent_id, child_id),
        CHECK (parent_id <> child_id)
    );
    CREATE TABLE local_state(
        resource_id TEXT PRIMARY KEY REFERENCES resources(id) ON DELETE CASCADE,
        state       TEXT NOT NULL CHECK (state IN ('ISP', 'ISU', 'OSU', 'OSF')),
        pending     TEXT CHECK (pending IN ('create', 'restore', 'remove', 'delete')),
        reason      TEXT NOT NULL DEFAULT '',
        since       REAL NOT NULL
    );
    CREATE TABLE tombstones(
        resource_id TEXT PRIMARY KEY,
        tag         TEXT NOT NULL,
        version     INTEGER NOT NULL,
        deleted_at  REAL NOT NULL
    );
    CREATE TABLE ping_lists(
        subnet      TEXT PRIMARY KEY,
        addresses   TEXT NOT NULL
    );
    CREATE TABLE events(
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        ts          REAL NOT NULL,
        server      TEXT NOT NULL,
        tag         TEXT,
        kind        TEXT NOT NULL,
        message     TEXT NOT NULL,
        details     TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX events_tag ON events(tag);
    CREATE TABLE settings(
        key         TEXT PRIMARY KEY,
        value       TEXT NOT NULL
    );
    """,
    # Repeated identical events are kept as one row with a count (store/events.py).
    2: """
    ALTER TABLE events ADD COLUMN count INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE events ADD COLUMN last_ts REAL;
    CREATE INDEX events_ts ON events(ts);
    """,
}


class Database:
    """One connection to the server's database, shared under a lock.

    The daemon's event loop does all writes; API handlers and the monitor
    read through the same object. Transactions nest as savepoints.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        self._depth = 0
        # Told when the outermost transaction has ended (committed or rolled back),
        # so that an in-memory mirror can re-read exactly what was written.
        self.after_transaction: list[Callable[[bool], None]] = []
        # Whether writes succeed, and what holds a failed write in memory (store/health.py).
        self.health = StoreHealth(path)
        self.keepers: list[Keeper] = []
        self._kept = False
        for pragma in (
            "journal_mode=WAL",
            "synchronous=FULL",
            "foreign_keys=ON",
            "busy_timeout=5000",
            # Pages go to disk at COMMIT only, never in the middle of a transaction: a full
            # disk fails a commit, which can be kept, not a statement halfway through.
            "cache_spill=OFF",
        ):
            self._conn.execute(f"PRAGMA {pragma}")

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A transaction (a savepoint when nested): committed on exit, rolled back on error.

        When the outermost commit fails because of the disk (store/health.py), the
        keepers hold in memory what they can, to be written later: if they hold
        everything (states, settings, events: a check, a recovery, a takeover) nothing
        is raised, so a safety action never waits on the disk; otherwise (a definition)
        StoreUnavailable is raised and nothing was stored.
        """
        with self._lock:
            name = f"sp{self._depth}"
            self._conn.execute("BEGIN IMMEDIATE" if self._depth == 0 else f"SAVEPOINT {name}")
            self._depth += 1
            try:
                yield self._conn
            except BaseException as exc:
                self._depth -= 1
                if self._depth:
                    self._undo_savepoint(name)
                    raise
                self._rollback()
                # A failure in the middle cut the work short: never pretend it was done.
                if self._store_failed(exc):
                    raise StoreUnavailable(self.health.reason()) from exc
                raise
            self._depth -= 1
            if self._depth:
                self._conn.execute(f"RELEASE {name}")
                return
            try:
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                if not self._store_failed(exc):
                    raise
                if not self._kept:
                    raise StoreUnavailable(self.health.reason()) from exc
                return
            self.health.succeeded()
            self._ended(committed=True)

    def _undo_savepoint(self, name: str) -> None:
        # A disk failure may have rolled the whole transaction back already.
        if self._conn.in_transaction:
            self._conn.execute(f"ROLLBACK TO {name}")
            self._conn.execute(f"RELEASE {name}")

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")

    def _store_failed(self, exc: BaseException) -> bool:
        """After the outermost transaction was rolled back: whether `exc` was the disk's
        doing (then the keepers keep what they can, `_kept` says whether all of it)."""
        failed = is_store_failure(exc)
        self._kept = False
        if failed:
            self.health.failed(exc)
            self._kept = all([keeper.can_keep() for keeper in self.keepers])
            if self._kept:
                for keeper in self.keepers:
                    keeper.keep()
            log.error("%s; %s", self.health.reason(), "kept in memory" if self._kept else "refused")
        self._ended(committed=False)
        return failed

    def _ended(self, committed: bool) -> None:
        for listener in self.after_transaction:
            listener(committed)

    def query(self, sql: str, params: tuple | dict = ()) -> list[sqlite3.Row]:
        """Rows of a read-only query."""
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    @property
    def depth(self) -> int:
        """How many transactions are open (0: none; 2: a savepoint inside one)."""
        return self._depth

    def schema_version(self) -> int:
        """The version of the schema this database has."""
        with self._lock:
            return int(self._conn.execute("PRAGMA user_version").fetchone()[0])


def open_db(path: Path) -> Database:
    """Open (creating if needed), check and migrate the database at `path`.

    Raises soundness.DamagedDatabase when it cannot be trusted (not SQLite, broken
    pages, a schema or a row that is not what its version says) and
    soundness.NewerDatabase when a newer ipkeeper wrote it; nothing is changed then."""
    path.parent.mkdir(parents=True, exist_ok=True)
    current = soundness.check_file(path, _migrations())  # read-only: a damaged file stays as it is
    try:
        db = Database(path)
    except sqlite3.DatabaseError as exc:
        raise soundness.DamagedDatabase(f"{path}: damaged: {exc}") from None
    for version in range(current + 1, SCHEMA_VERSION + 1):
        with db.transaction() as conn:
            for statement in _statements(MIGRATIONS[version]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version}")
    return db


def _migrations() -> tuple[str, ...]:
    return tuple(MIGRATIONS[v] for v in range(1, SCHEMA_VERSION + 1))


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]
