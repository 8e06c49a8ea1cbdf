"""Locks that keep two operations on one hierarchy from interleaving.

Each resource has an asyncio lock; an operation on a hierarchy takes the
locks of every resource in it, in sorted order (so two operations never
deadlock). Since a dependency change can merge or split hierarchies while
an operation waits, the hierarchy is computed again once the locks are held
and the acquisition is retried if it changed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable


class HierarchyLocks:
    """Per-resource locks, taken a whole hierarchy at a time."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        # Told the ids whose locks were just released (the decision loop looks again).
        self.on_release: list[Callable[[set[str]], None]] = []

    def _lock(self, resource_id: str) -> asyncio.Lock:
        return self._locks.setdefault(resource_id, asyncio.Lock())

    def busy(self, resource_id: str) -> bool:
        """True while some operation holds this resource's lock."""
        lock = self._locks.get(resource_id)
        return lock is not None and lock.locked()

    @contextlib.asynccontextmanager
    async def hold(self, members: Callable[[], set[str]]) -> AsyncIterator[set[str]]:
        """Hold the locks of the set `members()` returns, stable once held; yields that set."""
        while True:
            wanted = members()
            held: list[asyncio.Lock] = []
            try:
                for rid in sorted(wanted):
                    lock = self._lock(rid)
                    await lock.acquire()
                    held.append(lock)
                if members() == wanted:
                    yield wanted
                    return
            finally:
                for lock in reversed(held):
                    lock.release()
                if held:
                    for listener in self.on_release:
                        listener(set(wanted))

    def forget(self, resource_id: str) -> None:
        """Drop the lock of a deleted resource (when nobody holds it)."""
        lock = self._locks.get(resource_id)
        if lock is not None and not lock.locked():
            del self._locks[resource_id]
