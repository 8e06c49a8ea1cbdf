"""Health checks of this server's in-service instances, and what follows a failure.

Every ISP instance is checked every CHECK_INTERVAL (R9), and at once when
its interface or its address changes (the host's change notifications).
Checks that are due together go to their kit together: the IP kit checks a
whole batch from memory in one call, sharing one ping per subnet; any other
kit's checks run each on its own thread. A check never waits for another:
one still running when it is due again is simply not started twice, and
each is bounded by its kit's time limit.

Checks only observe and run outside any lock; a failure takes the
hierarchy's locks, confirms the instance is still in service, tries local
recovery while the budget lasts (R10), and otherwise hands the hierarchy to
`on_failure` (take it out of service as OSF on one server; fail over in a
cluster). A failure that is only nobody answering on the subnet goes to
`noresponder.py` first: the resource may be kept in service here, ISU, and
checked on until a responder answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import math
import time
from collections.abc import Awaitable, Iterable
from typing import Protocol

from ipkeeper.engine import conflicts, decide
from ipkeeper.engine.core import Engine
from ipkeeper.engine.noresponder import NoResponder
from ipkeeper.model.states import KitResult, ResourceState
from ipkeeper.store.repo import ResourceRecord

log = logging.getLogger("ipkeeper.monitor")


class FailureHandler(Protocol):
    """What follows a failure the monitor could not repair: `candidates`, when given,
    are the only servers the hierarchy may be handed to."""

    def __call__(
        self, rid: str, ids: set[str], why: str, candidates: set[str] | None = None
    ) -> Awaitable[None]:
        """Take the hierarchy `ids` of `rid` out of service here, and maybe hand it over."""
        ...


TICK = 0.1  # checks due within one tick of each other go together


async def stop_hierarchy(engine: Engine, rid: str, ids: set[str], why: str) -> None:
    """The one-server answer to an unrecoverable failure: the hierarchy goes OSF."""
    tag = engine.tag(rid)
    result = await engine.take_down(ids, f"{tag} failed: {why}", final=ResourceState.OSF)
    if not result.ok:
        engine.events.add("state", f"could not take everything down: {result.reason}", tag=tag)


class Monitor:
    """Schedules quick_check for every ISP instance here; see the module docstring."""

    def __init__(
        self,
        engine: Engine,
        on_failure: FailureHandler | None = None,
        no_responder: NoResponder | None = None,
    ) -> None:
        self.engine = engine

        async def stop(
            rid: str, ids: set[str], why: str, candidates: set[str] | None = None
        ) -> None:
            await stop_hierarchy(engine, rid, ids, why)

        self.on_failure: FailureHandler = on_failure or stop
        self.no_responder = no_responder or NoResponder(engine)
        self.next_due: dict[str, float] = {}  # ISP instances and when each is due
        # Instances due at the same time form one cohort, checked as one batch; the
        # heap holds each cohort's time once.
        self._cohorts: dict[float, list[str]] = {}
        self._heap: list[float] = []
        self.running: set[str] = set()
        self.recoveries: dict[str, list[float]] = {}
        self.link_down: dict[str, float] = {}  # resource -> when its check first saw no link
        self.link_changed: dict[str, float] = {}  # interface -> when its link last changed
        self.checks = 0
        self.wakeup = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        engine.repo.listeners.append(self._state_changed)
        for rid in engine.repo.local_states():
            self._state_changed(rid)

    # -- what is due -----------------------------------------------------------------

    def _state_changed(self, rid: str) -> None:
        st = self.engine.repo.local_state(rid)
        if st is None or st.state is not ResourceState.ISU:
            self.no_responder.discard(rid)
        # ISP instances are checked, and ISU ones kept for want of a responder (until
        # their check passes again).
        checked = st is not None and (
            st.state is ResourceState.ISP or rid in self.no_responder.kept
        )
        if st is None or not checked or st.pending is not None:
            self.next_due.pop(rid, None)
            # A link-down seen during an earlier time in service says nothing about the
            # next one: kept, it would let a new link-down act at once, without waiting
            # LINK_DEBOUNCE (seen as 46 ms link failovers after a first one of 348 ms).
            self.link_down.pop(rid, None)
        elif rid not in self.next_due:
            self._due([rid], self._next_slot(time.monotonic()))

    def _next_slot(self, now: float) -> float:
        """The next time on the CHECK_INTERVAL grid after `now` (at most an interval away):
        checks fall due together, so a thousand VIPs make one batch (and one wake-up) a
        second rather than ten."""
        interval = self.engine.tunables.get("CHECK_INTERVAL")
        return float((math.floor(now / interval + 1e-9) + 1) * interval)

    def _due(self, rids: list[str], when: float) -> None:
        cohort = self._cohorts.get(when)
        if cohort is None:
            cohort = self._cohorts[when] = []
            heapq.heappush(self._heap, when)
        cohort.extend(rids)
        next_due = self.next_due
        for rid in rids:
            next_due[rid] = when

    def check_now(self, resource_ids: Iterable[str] | None = None) -> None:
        """Make these in-service instances (all, when None) due at once."""
        wanted = list(self.next_due) if resource_ids is None else resource_ids
        self._due([r for r in wanted if r in self.next_due], time.monotonic())
        self.wakeup.set()

    def host_changed(self, interfaces: set[str], addresses: set[str]) -> None:
        """A link on one of `interfaces` or one of `addresses` changed: check what it concerns."""
        now = time.monotonic()
        for interface in interfaces:
            self.link_changed[interface] = now
        touched = []
        for rid in self.next_due:
            rec = self.engine.repo.resource(rid)
            inst = rec.instance(self.engine.server) if rec is not None else None
            if inst is None:
                continue
            if inst.props.get("interface") in interfaces or inst.props.get("address") in addresses:
                touched.append(rid)
        if touched:
            self.check_now(touched)

    def _take_due(self, now: float) -> list[str]:
        due: list[str] = []
        later: list[str] = []
        next_due, running, locks = self.next_due, self.running, self.engine.locks
        while self._heap and self._heap[0] <= now + TICK / 2:
            when = heapq.heappop(self._heap)
            for rid in self._cohorts.pop(when, ()):
                if next_due.get(rid) != when or rid in running:
                    continue  # superseded, or no longer ISP, or still being checked
                (later if locks.busy(rid) else due).append(rid)
        if later:
            self._due(later, now + TICK)
        return due

    # -- running -------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Check whatever is due until `stop` is set."""
        while not stop.is_set():
            now = time.monotonic()
            due = self._take_due(now)
            if due:
                self._start(due)
            until = self._heap[0] - time.monotonic() if self._heap else 1.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wakeup.wait(), min(max(until, TICK), 1.0))
            self.wakeup.clear()
        for task in list(self._tasks):
            task.cancel()

    def _start(self, due: list[str]) -> None:
        by_kind: dict[str, list[ResourceRecord]] = {}
        for rid in due:
            rec = self.engine.repo.resource(rid)
            if rec is not None:
                by_kind.setdefault(rec.kind, []).append(rec)
        for kind, recs in by_kind.items():
            batched = hasattr(self.engine.kits.get(kind), "quick_check_many")
            groups = [recs] if batched else [[rec] for rec in recs]
            for group in groups:
                self.running.update(r.id for r in group)
                task = asyncio.create_task(self._check(group))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _check(self, recs: list[ResourceRecord]) -> None:
        engine = self.engine
        started = time.monotonic()
        try:
            results = await engine.act_many(recs, "quick_check")
            at = time.time()
            instances = [engine.instance(rec) for rec in recs]
            engine.metrics.checked(
                recs[0].kind,
                [i.tag for i in instances],
                results,
                time.monotonic() - started,
            )
            last, link_down = engine.last_check, self.link_down
            kept = self.no_responder.kept
            for rec, result in zip(recs, results, strict=True):
                last[rec.id] = (result, at)
                if not result.ok:
                    self._spawn(self._failed(rec.id, result))
                    continue
                if link_down:
                    link_down.pop(rec.id, None)
                if rec.id in kept:
                    self._spawn(self._answered(rec.id, result))
            self.checks += len(recs)
        except Exception:
            log.exception("checks of %d resources failed unexpectedly", len(recs))
        finally:
            ids = [rec.id for rec in recs]
            self.running.difference_update(ids)
            self._due([rid for rid in ids if rid in self.next_due], self._next_slot(started))
            self.wakeup.set()

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _link_trouble(
        self, rec: ResourceRecord, result: KitResult, now: float, debounce: float
    ) -> bool:
        """Whether a failed check may be the link's doing: it failed at the link step, or
        (a ping cannot leave an interface that lost its carrier a moment before the
        host's copy heard of it) the VIP's link is down now or changed just now."""
        if result.step == "link":
            return True
        if rec.kind != "ip":
            return False
        interface = self.engine.instance(rec).props.get("interface")
        if not isinstance(interface, str):
            return False
        state = self.engine.ip_kit().link_state(interface)
        changed = self.link_changed.get(interface)
        recent = changed is not None and now - changed < debounce
        return recent or not (state.admin_up and state.carrier)

    def _debounced(self, rid: str, tag: str, result: KitResult, now: float) -> bool:
        """A link that went down less than LINK_DEBOUNCE ago may come straight back (a
        flapping cable, a switch port bouncing): check again then instead of acting."""
        debounce = self.engine.tunables.get("LINK_DEBOUNCE")
        rec = self.engine.repo.resource(rid)
        if rec is None or not self._link_trouble(rec, result, now, debounce):
            return False
        since = self.link_down.setdefault(rid, now)
        if now - since >= debounce:
            return False
        if since == now:
            self.engine.events.add(
                "check-failed",
                f"quick_check failed ({result.reason}); acting only if the link is still down "
                f"after LINK_DEBOUNCE ({debounce:g}s)",
                tag=tag,
                step=result.step,
            )
        self._due([rid], since + debounce)
        self.wakeup.set()
        return True

    async def _failed(self, rid: str, result: KitResult) -> None:
        engine = self.engine
        async with engine.locks.hold(lambda: engine.hierarchy_of(rid)) as ids:
            st = engine.repo.local_state(rid)
            rec = engine.repo.resource(rid)
            kept = rid in self.no_responder.kept
            if rec is None or st is None or st.pending:
                return  # an administrator changed it meanwhile
            if not (st.state is ResourceState.ISP or (kept and st.state is ResourceState.ISU)):
                return
            tag = rec.tag_on(engine.server)
            if conflicts.keep_in_conflict(engine, rec, result):
                return  # another host announces the address: defended, kept ISU here
            now = time.monotonic()
            if kept and decide.no_responder(result):
                await self._still_unanswered(rec, ids, result)
                return
            if self._debounced(rid, tag, result, now):
                return
            window = engine.tunables.get("RECOVERY_WINDOW")
            recent = [t for t in self.recoveries.get(rid, []) if now - t < window]
            decision = decide.on_check_failure(
                result, len(recent), engine.tunables.get("RECOVERY_TRIES")
            )
            engine.events.add("check-failed", decision.reason, tag=tag, step=result.step)
            why = decision.reason
            repaired: KitResult | None = None
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
            if self.no_responder.applies(result, repaired):
                await self._unanswered(rec, ids, why, result)
                return
            await self.on_failure(rid, ids, why)

    async def _unanswered(
        self, rec: ResourceRecord, ids: set[str], why: str, result: KitResult
    ) -> None:
        """Nobody answers on the subnet from here (noresponder.py): keep the resource here,
        or hand the hierarchy only to a server that reaches a responder. Locks held."""
        decision, reached = await self.no_responder.judge(rec, why, result)
        if decision.action is decide.Action.KEEP:
            self.no_responder.keep(rec, decision, result)
            return
        if decision.target is None:  # NO_RESPONDER=failover: as any failure
            await self.on_failure(rec.id, ids, why)
            return
        self.engine.events.add("failover", decision.reason, tag=rec.tag_on(self.engine.server))
        await self.on_failure(rec.id, ids, why, reached)

    async def _still_unanswered(
        self, rec: ResourceRecord, ids: set[str], result: KitResult
    ) -> None:
        """A kept resource's check still finds nobody: ask the others again now and then
        (a server that reaches a responder now gets it); the policy may have changed."""
        why = f"quick_check failed ({result.reason})"
        if self.no_responder.policy() != "keep":
            self.no_responder.discard(rec.id)
            await self.on_failure(rec.id, ids, f"{why}; NO_RESPONDER is no longer keep")
            return
        if self.no_responder.due(rec.id):
            await self._unanswered(rec, ids, why, result)

    async def _answered(self, rid: str, result: KitResult) -> None:
        """A kept resource's check passed: protected again."""
        engine = self.engine
        async with engine.locks.hold(lambda: engine.hierarchy_of(rid)):
            st = engine.repo.local_state(rid)
            rec = engine.repo.resource(rid)
            if rec is None or st is None or st.state is not ResourceState.ISU or st.pending:
                return
            if rid in self.no_responder.kept:
                self.no_responder.protected(rec, result)
