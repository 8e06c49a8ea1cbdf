"""A disk that refuses writes is an alarm, not an outage (issue 11, item 7).

While the database cannot be written (a full disk, a read-only or failing
one: store/health.py), checks, local recoveries, takeovers and give-ups go
on: their states wait in the repository's memory and their events in the
event log's. This module is what the rest of the daemon sees of it:

- `describe` is `status`'s `store` object (writable, since when, why, what
  waits in memory) and what the metrics export;
- `refuse_changes` answers an administrator's change with one line (HTTP 503,
  `error: store: ...`) instead of attempting it: a definition cannot be
  stored, and an in-service or out-of-service that could not be recorded
  would be undone by the next start;
- `StoreWatch` tries the disk again every second while anything waits,
  writes what waited once it takes writes, and makes the alarm and its end
  events (the first waits in memory too; its log line goes out at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from ipkeeper.engine.core import Engine
from ipkeeper.engine.errors import OpError

log = logging.getLogger("ipkeeper.store")

INTERVAL = 1.0  # seconds between tries of a disk that refused a write
PROBE = "store.probe"  # the setting written to ask a disk that refused a write again


def describe(engine: Engine) -> dict[str, Any]:
    """`status`'s `store`: whether this server's database takes writes, and what waits."""
    health = engine.repo.db.health
    found: dict[str, Any] = {
        "writable": health.writable,
        "path": str(health.path),
        "write_failures": health.failures,
        "unsaved_states": engine.repo.unsaved,
        "waiting_events": engine.events.waiting,
    }
    if not health.writable:
        found.update(since=health.failing_since, reason=health.reason())
    return found


def flush(engine: Engine) -> tuple[int, int]:
    """Write what waited for the disk (states and settings, then events); how many of each
    went. When nothing waits but the disk refused a write, a small one asks it again."""
    repo = engine.repo
    if not repo.db.health.writable and not repo.unsaved:
        repo.set_setting(PROBE, f"{time.time():.3f}")
    states = repo.flush_unsaved()
    events = engine.events.flush() if repo.db.health.writable else 0
    return states, events


def refuse_changes(engine: Engine) -> None:
    """Raise OpError (503) while the disk refuses writes; tried once more first."""
    health = engine.repo.db.health
    if health.writable:
        return
    flush(engine)
    if not health.writable:
        raise OpError(
            "store",
            f"{health.reason()}: nothing was changed; checks, recovery and failover go on",
            status=503,
        )


class StoreWatch:
    """Tries the disk again while anything waits for it; see the module docstring."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._alarmed = False

    def tick(self) -> None:
        """One look: write what waits, and say when the alarm starts and ends."""
        engine = self.engine
        health = engine.repo.db.health
        states = events = 0
        if not health.writable or engine.repo.unsaved or engine.events.waiting:
            states, events = flush(engine)
        if not health.writable:
            if not self._alarmed:
                self._alarmed = True
                engine.events.add(
                    "store",
                    f"{health.reason()}: states and events are kept in memory; checks, "
                    "recovery and failover go on; administrative changes are refused",
                )
            return
        recovery = health.take_recovery()
        if recovery is None and not self._alarmed:
            return
        self._alarmed = False
        left_out, engine.events.left_out = engine.events.left_out, 0
        lost = f"; {left_out} more events could not be kept" if left_out else ""
        spell = (
            f" after {recovery.seconds:.1f} s ({recovery.error}, {recovery.failures} writes refused)"
            if recovery is not None
            else ""
        )
        engine.events.add(
            "store",
            f"{health.path} takes writes again{spell}: {states} states or settings and "
            f"{events} events kept in memory are written{lost}",
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Look every INTERVAL until `stop` is set (never raises)."""
        while not stop.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("the store watch failed; trying again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), INTERVAL)
