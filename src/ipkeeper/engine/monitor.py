"""Periodic health checks of this server's in-service instances, and what follows a failure.

Checks only observe and run outside any lock; a failure takes the hierarchy's
locks, confirms the instance is still in service, tries local recovery while
the budget lasts (R10), and otherwise hands the hierarchy to `on_failure`
(take it out of service as OSF on one server; fail over in a cluster).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Awaitable, Callable

from ipkeeper.engine import decide
from ipkeeper.engine.core import Engine
from ipkeeper.model.states import KitResult, ResourceState

log = logging.getLogger("ipkeeper.monitor")

FailureHandler = Callable[[str, set[str], str], Awaitable[None]]


async def stop_hierarchy(engine: Engine, rid: str, ids: set[str], why: str) -> None:
    """The one-server answer to an unrecoverable failure: the hierarchy goes OSF."""
    tag = engine.tag(rid)
    result = await engine.take_down(ids, f"{tag} failed: {why}", final=ResourceState.OSF)
    if not result.ok:
        engine.events.add("state", f"could not take everything down: {result.reason}", tag=tag)


class Monitor:
    """Schedules quick_check for every ISP instance here, every CHECK_INTERVAL."""

    def __init__(self, engine: Engine, on_failure: FailureHandler | None = None) -> None:
        self.engine = engine
        self.on_failure: FailureHandler = on_failure or (
            lambda rid, ids, why: stop_hierarchy(engine, rid, ids, why)
        )
        self.next_due: dict[str, float] = {}
        self.running: dict[str, asyncio.Task[None]] = {}
        self.recoveries: dict[str, list[float]] = {}
        self.checks = 0
        self.wakeup = asyncio.Event()

    def check_now(self) -> None:
        """Make every in-service instance due at once (a link or an address changed)."""
        for rid in self.next_due:
            self.next_due[rid] = 0.0
        self.wakeup.set()

    def watch(self, sock: socket.socket) -> None:
        """Check at once whenever `sock` (netlink.change_socket) reports a change."""

        def readable() -> None:
            with contextlib.suppress(BlockingIOError, InterruptedError):
                while sock.recv(65536):
                    pass
            self.check_now()

        asyncio.get_running_loop().add_reader(sock.fileno(), readable)

    async def run(self, stop: asyncio.Event) -> None:
        """Check whatever is due until `stop` is set."""
        while not stop.is_set():
            interval = self.engine.tunables.get("CHECK_INTERVAL")
            self._schedule(interval)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wakeup.wait(), min(0.25, interval / 4))
            self.wakeup.clear()
        for task in list(self.running.values()):
            task.cancel()

    def _schedule(self, interval: float) -> None:
        now = time.monotonic()
        states = self.engine.repo.local_states()
        for rid in list(self.next_due):
            st = states.get(rid)
            if st is None or st.state is not ResourceState.ISP:
                del self.next_due[rid]
        for rid, st in states.items():
            if st.state is not ResourceState.ISP or st.pending is not None:
                continue
            if rid in self.running or self.engine.locks.busy(rid):
                continue
            due = self.next_due.setdefault(rid, now + interval)
            if now >= due:
                self.running[rid] = asyncio.create_task(self._check(rid, interval))

    async def _check(self, rid: str, interval: float) -> None:
        try:
            rec = self.engine.repo.resource(rid)
            if rec is None:
                return
            started = time.monotonic()
            result = await self.engine.act(rec, "quick_check")
            tag = rec.tag_on(self.engine.server)
            self.engine.metrics.checks.labels(tag, "ok" if result.ok else "failed").inc()
            self.engine.metrics.check_seconds.labels(tag).observe(time.monotonic() - started)
            self.checks += 1
            self.engine.last_check[rid] = (result, time.time())
            if not result.ok:
                await self._failed(rid, result)
        except Exception:
            log.exception("check of %s failed unexpectedly", rid)
        finally:
            self.next_due[rid] = time.monotonic() + interval
            self.running.pop(rid, None)

    async def _failed(self, rid: str, result: KitResult) -> None:
        engine = self.engine
        async with engine.locks.hold(lambda: engine.hierarchy_of(rid)) as ids:
            st = engine.repo.local_state(rid)
            rec = engine.repo.resource(rid)
            if rec is None or st is None or st.state is not ResourceState.ISP or st.pending:
                return  # an administrator changed it meanwhile
            tag = rec.tag_on(engine.server)
            now = time.monotonic()
            window = engine.tunables.get("RECOVERY_WINDOW")
            recent = [t for t in self.recoveries.get(rid, []) if now - t < window]
            decision = decide.on_check_failure(
                result, len(recent), engine.tunables.get("RECOVERY_TRIES")
            )
            engine.events.add("check-failed", decision.reason, tag=tag, step=result.step)
            why = decision.reason
            if decision.action is decide.Action.STOP:
                await stop_hierarchy(engine, rid, ids, why)  # no failover for a configuration fault
                return
            if decision.action is decide.Action.RECOVER:
                self.recoveries[rid] = [*recent, now]
                repaired = await engine.act(rec, "recover")
                engine.metrics.recoveries.labels(tag, "ok" if repaired.ok else "failed").inc()
                if repaired.ok:
                    engine.record(rec, ResourceState.ISP, "recovered", repaired.reason)
                    return
                engine.events.add("recovery-failed", repaired.reason, tag=tag, step=repaired.step)
                why = repaired.reason
            await self.on_failure(rid, ids, why)
