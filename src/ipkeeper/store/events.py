"""The event log (R29): every state change, check failure, recovery, failover and
administrative action, with its reason, committed before it is reported.

Bounded: an event identical to the last one logged about the same resource
(same kind and message) less than EVENTS_COALESCE seconds ago adds one to
that row's count instead of a row, so one root cause repeated a thousand
times is one line saying so, while alternations (up, down, up) keep their
order;
rows older than EVENTS_MAX_AGE, or beyond the newest EVENTS_MAX_ROWS, are
deleted (checked every PRUNE_EVERY new rows).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

from ipkeeper.config.tunables import Tunables
from ipkeeper.logging import event_level
from ipkeeper.store.db import Database

log = logging.getLogger("ipkeeper.events")
PRUNE_EVERY = 1000
BACKLOG_MAX = 10_000  # events kept in memory while the disk refuses writes


@dataclass(frozen=True)
class Event:
    """One line of the event log."""

    id: int
    ts: float
    server: str
    tag: str | None
    kind: str
    message: str
    details: dict[str, Any]
    count: int = 1  # how many times it happened (identical repeats are coalesced)
    last: float | None = None  # when it last happened, when more than once

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


@dataclass
class _Pending:
    """An event being written (or waiting for the disk): what goes into its row."""

    ts: float
    tag: str | None
    kind: str
    message: str
    details: str  # JSON
    id: int = 0
    count: int = 1
    last: float | None = None

    def event(self, server: str) -> Event:
        """As the log shows it."""
        return Event(
            self.id, self.ts, server, self.tag, self.kind, self.message,
            _details(self.details), self.count, self.last,
        )  # fmt: skip


class EventLog:
    """Appends events to the database and wakes anyone following the log.

    Never raises because of the disk (store/health.py): while the database
    cannot be written, events wait in memory (the newest BACKLOG_MAX, with a
    count of those left out), their log lines written at once, and they are
    written with their own times by `flush` once it takes writes again.
    """

    def __init__(self, db: Database, server: str, tunables: Tunables | None = None) -> None:
        self.db = db
        self.server = server
        self.tunables = tunables
        self._waiters: set[asyncio.Event] = set()
        self._recent: dict[tuple[str, str | None, str], tuple[int, float]] = {}
        self._last_of: dict[str | None, tuple[str, str | None, str]] = {}  # tag -> its last
        self._since_prune = 0
        self._txn: list[_Pending] = []  # written in the transaction now open
        self._backlog: list[_Pending] = []  # refused by the disk, oldest first
        self.left_out = 0  # events beyond BACKLOG_MAX while the disk refused writes
        db.keepers.append(self)
        db.after_transaction.append(self._ended)

    # -- when the disk refuses a write (store/health.py) ------------------------------

    def can_keep(self) -> bool:
        """Keeper: events can always wait in memory."""
        return True

    def keep(self) -> None:
        """Keeper: the failed transaction's events wait for the disk."""
        self._wait(self._txn)
        self._txn = []

    def _wait(self, events: list[_Pending]) -> None:
        for pending in events:
            pending.id = 0
        self._backlog.extend(events)
        excess = len(self._backlog) - BACKLOG_MAX
        if excess > 0:
            del self._backlog[:excess]
            self.left_out += excess

    def _coalesce_waiting(self, key: tuple[str, str | None, str], ts: float) -> Event | None:
        """One more of an event that waits for the disk: its count grows."""
        for pending in reversed(self._backlog):
            if (pending.kind, pending.tag, pending.message) == key:
                pending.count += 1
                pending.last = ts
                return pending.event(self.server)
        return None

    def _ended(self, _committed: bool) -> None:
        self._txn = []

    @property
    def waiting(self) -> int:
        """Events waiting in memory for the disk."""
        return len(self._backlog)

    def flush(self) -> int:
        """Write the events that waited for the disk (one transaction); how many."""
        if not self._backlog:
            return 0
        waiting, self._backlog = self._backlog, []
        self._txn.extend(waiting)
        with self.db.transaction() as conn:
            for pending in waiting:
                self._write(conn, pending)
        return len(waiting) - len(self._backlog)

    def _setting(self, name: str, default: float) -> float:
        return float(self.tunables.get(name)) if self.tunables is not None else default

    def add(self, kind: str, message: str, tag: str | None = None, **details: Any) -> Event:
        """Record an event (committed on return) and log it as `[tag@server] message`."""
        ts = time.time()
        key = (kind, tag, message)
        seen = self._recent.get(key)
        last = self._last_of.get(tag)
        if (
            seen is not None
            and last == key
            and ts - seen[1] < self._setting("EVENTS_COALESCE", 60.0)
        ):
            assert seen is not None
            repeated = self._repeat(seen[0], ts) if seen[0] else self._coalesce_waiting(key, ts)
            if repeated is not None:
                self._recent[key] = (seen[0], ts)
                return repeated
        event = self._insert(kind, message, tag, details, ts)
        if len(self._recent) > 10_000:
            self._recent.clear()
            self._last_of.clear()
        self._recent[key] = (event.id, ts)
        self._last_of[tag] = key
        self._since_prune += 1
        if self._since_prune >= PRUNE_EVERY:
            self.prune()
        return event

    def _repeat(self, event_id: int, ts: float) -> Event | None:
        """One more of an event logged a moment ago: its count grows; no new row."""
        if not self.db.health.writable:
            return None  # a new event, to wait for the disk with its own count
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE events SET count = count + 1, last_ts = ? WHERE id = ?", (ts, event_id)
            )
            rows = conn.execute("SELECT * FROM events WHERE id = ?", (event_id,)).fetchall()
        if not rows:
            return None
        for waiter in list(self._waiters):
            waiter.set()
        return _event(rows[0])

    def prune(self) -> int:
        """Delete what is beyond the bounds (see the module docstring); rows deleted."""
        self._since_prune = 0
        max_rows = int(self._setting("EVENTS_MAX_ROWS", 100_000))
        oldest = time.time() - self._setting("EVENTS_MAX_AGE", 30 * 86400.0)
        with self.db.transaction() as conn:
            top = conn.execute("SELECT MAX(id) FROM events").fetchone()[0] or 0
            cur = conn.execute(
                "DELETE FROM events WHERE id <= ? OR ts < ?", (top - max_rows, oldest)
            )
            return int(cur.rowcount or 0)

    def _write(self, conn: Any, pending: _Pending) -> None:
        cur = conn.execute(
            "INSERT INTO events(ts, server, tag, kind, message, details, count, last_ts) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                pending.ts, self.server, pending.tag, pending.kind, pending.message,
                pending.details, pending.count, pending.last,
            ),
        )  # fmt: skip
        pending.id = int(cur.lastrowid or 0)

    def _insert(
        self, kind: str, message: str, tag: str | None, details: dict[str, Any], ts: float
    ) -> Event:
        text = json.dumps(details, default=str, sort_keys=True)
        pending = _Pending(ts, tag, kind, message, text)
        if self._backlog and self.db.depth == 0 and self.db.health.writable:
            self.flush()  # what waited for the disk goes first
        if self.db.health.writable:
            self._txn.append(pending)
            with self.db.transaction() as conn:
                self._write(conn, pending)
        else:  # wait for the disk without asking it again: flush() does
            self._wait([pending])
        event_id = pending.id
        log.log(
            event_level(kind, message), "[%s@%s] %s: %s", tag or "-", self.server, kind, message
        )
        for waiter in list(self._waiters):
            waiter.set()
        return Event(event_id, ts, self.server, tag, kind, message, details)

    def count(self) -> int:
        """Rows in the log now."""
        return int(self.db.query("SELECT COUNT(*) AS n FROM events")[0]["n"])

    def recent(self, limit: int = 50, after: int = 0, tag: str | None = None) -> list[Event]:
        """The last `limit` events with an id above `after`, oldest first."""
        sql = "SELECT * FROM events WHERE id > ?"
        params: list[Any] = [after]
        if tag is not None:
            sql += " AND tag = ?"
            params.append(tag)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(limit)
        rows = self.db.query(sql, tuple(params))
        return [_event(r) for r in reversed(rows)]

    def search(
        self,
        limit: int,
        since: float | None = None,
        tag: str | None = None,
        kinds: tuple[str, ...] = (),
    ) -> list[Event]:
        """The last `limit` events at or after `since`, of `tag` and of these kinds, oldest first.

        For the cluster-wide history (engine/history.py), which filters by time
        rather than by id, since ids are per server.
        """
        sql = "SELECT * FROM events WHERE ts >= ?"
        params: list[Any] = [since if since is not None else 0.0]
        if tag is not None:
            sql += " AND tag = ?"
            params.append(tag)
        if kinds:
            sql += f" AND kind IN ({', '.join('?' for _ in kinds)})"
            params.extend(kinds)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(limit)
        return [_event(r) for r in reversed(self.db.query(sql, tuple(params)))]

    async def wait(self, timeout: float) -> None:
        """Return when a new event is added, or after `timeout` seconds."""
        waiter = asyncio.Event()
        self._waiters.add(waiter)
        try:
            await asyncio.wait_for(waiter.wait(), timeout)
        except TimeoutError:
            pass
        finally:
            self._waiters.discard(waiter)


def _event(r: Any) -> Event:
    return Event(
        r["id"],
        r["ts"],
        r["server"],
        r["tag"],
        r["kind"],
        r["message"],
        _details(r["details"]),
        int(r["count"]),
        r["last_ts"],
    )


def _details(text: Any) -> dict[str, Any]:
    """An event's details; a row damaged on disk is shown as it is (history decides nothing)."""
    try:
        found = json.loads(text)
    except (TypeError, ValueError):
        return {"undecodable": str(text)[:200]}
    return found if isinstance(found, dict) else {"undecodable": str(text)[:200]}
