"""The event log (R29): every state change, check failure, recovery, failover and
administrative action, with its reason, committed before it is reported."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

from ipkeeper.logging import event_level
from ipkeeper.store.db import Database

log = logging.getLogger("ipkeeper.events")


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

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


class EventLog:
    """Appends events to the database and wakes anyone following the log."""

    def __init__(self, db: Database, server: str) -> None:
        self.db = db
        self.server = server
        self._waiters: set[asyncio.Event] = set()

    def add(self, kind: str, message: str, tag: str | None = None, **details: Any) -> Event:
        """Record an event (committed on return) and log it as `[tag@server] message`."""
        ts = time.time()
        with self.db.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO events(ts, server, tag, kind, message, details) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    ts,
                    self.server,
                    tag,
                    kind,
                    message,
                    json.dumps(details, default=str, sort_keys=True),
                ),
            )
            event_id = int(cur.lastrowid or 0)
        log.log(
            event_level(kind, message), "[%s@%s] %s: %s", tag or "-", self.server, kind, message
        )
        for waiter in list(self._waiters):
            waiter.set()
        return Event(event_id, ts, self.server, tag, kind, message, details)

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
        return [
            Event(
                r["id"],
                r["ts"],
                r["server"],
                r["tag"],
                r["kind"],
                r["message"],
                json.loads(r["details"]),
            )
            for r in reversed(rows)
        ]

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


def _event(row: Any) -> Event:
    return Event(
        row["id"],
        row["ts"],
        row["server"],
        row["tag"],
        row["kind"],
        row["message"],
        json.loads(row["details"]),
    )
