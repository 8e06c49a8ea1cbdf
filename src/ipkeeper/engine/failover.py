"""Failover, switchback and quorum: the cluster's decision loop (R22, R23, R32).

The loop is woken by changes, not by a clock: the view builder marks the
hierarchies that a change concerns (a peer died: what is extended to it; a
report arrived: the hierarchies it changed), and each pass decides exactly
those, with `decide(view, hierarchy, now, policy)`. A decision that must
wait (quorum release, the majority's fencing wait, back-off after a failed
takeover) says until when, and the loop wakes then. A full pass every
SAFETY_PASS seconds catches anything a lost notification would leave.

What it does with a decision:
- take over (RESTORE): every hierarchy that needs it in one pass is brought
  up in one batch (engine.bring_up_many), so a dead peer's thousand VIPs come
  up together rather than one after another;
- give up (REMOVE): split brain healed, or no quorum for QUORUM_RELEASE;
- switch back (SWITCH_BACK): to a better server that rejoined (R23).

Work for one hierarchy never overlaps: while a task runs for it, or an
administrative operation holds its locks, it is decided again only after.
A failed local recovery (from the monitor) hands the hierarchy to the next
server by priority, one after the other (`local_failure`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable

from ipkeeper.engine import decide
from ipkeeper.engine.core import Engine
from ipkeeper.engine.errors import OpError
from ipkeeper.engine.moves import bring_up_many_here, hierarchy_down, switch_back, up_on
from ipkeeper.engine.placement import placement, retire_dead_holders
from ipkeeper.model.states import ResourceState
from ipkeeper.model.view import Attempt, ClusterView, HierarchyId, HierarchyView

log = logging.getLogger("ipkeeper.failover")

SAFETY_PASS = 30.0  # seconds between full passes over every hierarchy


async def announce_here(engine: Engine, ids: set[str], why: str, tag: str) -> None:
    """Announce again every address of the hierarchy that is up here (and say so)."""
    recs = [
        rec
        for rid in sorted(ids)
        if (rec := engine.repo.resource(rid)) is not None
        and hasattr(engine.kits.get(rec.kind), "announce_many")
    ]
    results = await engine.act_many(recs, "announce") if recs else []
    done = [rec.tag_on(engine.server) for rec, r in zip(recs, results, strict=True) if r.ok]
    what = ", ".join(done) if done else "nothing to announce"
    engine.events.add("failover", f"{why}: {what}", tag=tag)


class Failover:
    """Decides and acts for this server; see the module docstring."""

    def __init__(self, engine: Engine, clock: Callable[[], float] = time.monotonic) -> None:
        self.engine = engine
        self.clock = clock
        self.view = engine.view
        self.wake = asyncio.Event()
        self.view.on_change.append(self.wake.set)
        engine.locks.on_release.append(self._released)
        self._running: dict[HierarchyId, asyncio.Task[None]] = {}
        self._deferred: set[HierarchyId] = set()  # to decide once their task or lock is done
        self._timers: dict[HierarchyId, float] = {}  # decide again at this time
        self._waiting: dict[HierarchyId, str] = {}  # the wait last reported, said once
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_full = 0.0
        self._had_quorum = True

    # -- being told ----------------------------------------------------------------

    def peer_changed(self, peer: str, alive: bool) -> None:
        """Membership listener: a new situation, so takeovers may be tried at once again."""
        self.view.attempts.clear()
        self.view.mark_all()
        self.wake.set()

    def _released(self, resource_ids: set[str]) -> None:
        self.view.mark_resources(resource_ids)

    # -- the loop --------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Decide on every wake-up until `stop`."""
        while not stop.is_set():
            now = self.clock()
            deadline = min([*self._timers.values(), self._last_full + SAFETY_PASS])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), max(deadline - now, 0.0))
            self.wake.clear()
            try:
                self.evaluate()
            except Exception:
                log.exception("failover evaluation failed")
        for task in self._tasks:
            task.cancel()

    def evaluate(self) -> None:
        """One pass over the hierarchies that changed, whose timers ran out, or all of them."""
        engine, now = self.engine, self.clock()
        if now - self._last_full >= SAFETY_PASS:
            self._last_full = now
            self.view.mark_all()
        self._quorum(now)
        due = {hid for hid, at in self._timers.items() if at <= now}
        for hid in due:
            del self._timers[hid]
        todo = self.view.take_changed() | due | self._deferred
        self._deferred = set()
        view = self.view.view()
        policy = decide.Policy.from_tunables(engine.tunables)
        takeovers: list[tuple[HierarchyId, HierarchyView, str]] = []
        for hid in sorted(todo):
            h = view.hierarchies.get(hid)
            if h is None or not h.extended_here:
                continue
            if hid in self._running or any(engine.locks.busy(r) for r in h.members):
                self._deferred.add(hid)
                continue
            if self._bookkeeping(h):
                self._deferred.add(hid)  # facts changed: decide on the new ones next pass
                self.wake.set()
                continue
            decision = decide.decide(view, hid, now, policy)
            if decision.action is decide.Action.RESTORE:
                takeovers.append((hid, h, decision.reason))
            else:
                self._act(view, h, decision)
        if takeovers:
            self._take_over(takeovers, now)

    def _bookkeeping(self, h: HierarchyView) -> bool:
        """Facts that follow from the view: a hand-over is over once somebody holds it; a
        dead server's last report stops counting once a live server runs it. True when
        anything changed."""
        engine = self.engine
        changed = False
        if h.holders and engine.server in h.abandoned:
            engine.handed_over.discard(set(h.members))
            changed = True
        stale = h.dead_holders | {s for s in h.abandoned if not h.places[s].alive}
        if h.running and stale and retire_dead_holders(engine, set(h.members)):
            changed = True
        if engine.server in h.holders:
            self.view.attempts.pop(h.id, None)
        return changed

    def _act(self, view: ClusterView, h: HierarchyView, decision: decide.Decision) -> None:
        """Start what `decision` asks for one hierarchy."""
        engine, ids = self.engine, set(h.members)
        if decision.action is decide.Action.WAIT:
            assert decision.wait_until is not None
            self._timers[h.id] = decision.wait_until
            kind = re.sub(r"\d+(\.\d+)?", "N", decision.reason)  # said once per kind of wait
            if self._waiting.get(h.id) != kind:
                self._waiting[h.id] = kind
                engine.events.add("failover", decision.reason, tag=h.tag)
            return
        self._waiting.pop(h.id, None)
        if decision.action is decide.Action.REMOVE:
            self._start(h.id, lambda: hierarchy_down(engine, ids, decision.reason))
        elif decision.action is decide.Action.SWITCH_BACK and decision.target is not None:
            target = decision.target
            self._start(h.id, lambda: switch_back(engine, ids, target))
        elif decision.action is decide.Action.ANNOUNCE:
            self.view.announced(h.id)
            self._start(h.id, lambda: announce_here(engine, ids, decision.reason, h.tag))

    def _take_over(self, batch: list[tuple[HierarchyId, HierarchyView, str]], now: float) -> None:
        """Bring every hierarchy of `batch` up here, together (one task, one kit batch)."""
        engine = self.engine
        with engine.repo.db.transaction():  # one commit for the whole batch's events
            for hid, h, reason in batch:
                self._waiting.pop(hid, None)
                last = self.view.attempts.get(hid)
                self.view.attempts[hid] = Attempt(now, (last.tries if last else 0) + 1)
                engine.events.add("failover", reason, tag=h.tag)

        async def work() -> None:
            started = time.monotonic()
            groups = [(set(h.members), reason) for _, h, reason in batch]
            results = await bring_up_many_here(engine, groups)
            elapsed = time.monotonic() - started
            for (_, h, _), result in zip(batch, results, strict=True):
                outcome = "ok" if result.ok else "failed"
                engine.metrics.failovers.labels(h.tag, "taken", outcome).inc()
                if result.ok:
                    engine.metrics.failover_seconds.labels(h.tag, "taken").observe(elapsed)

        task = asyncio.create_task(self._guarded(work))
        for hid, _, _ in batch:
            self._running[hid] = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _start(self, hid: HierarchyId, work: Callable[[], Awaitable[object]]) -> None:
        """Run `work()` for hierarchy `hid` on a task, after any still running for it."""
        before = self._running.get(hid)

        async def queued() -> None:
            if before is not None:
                await asyncio.wait({before})
            await work()

        task = asyncio.create_task(self._guarded(queued))
        self._running[hid] = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guarded(self, work: Callable[[], Awaitable[object]]) -> None:
        me = asyncio.current_task()
        try:
            await work()
        except OpError as exc:
            log.info("%s", exc)
        except Exception:
            log.exception("failover action failed")
        finally:
            for hid in [h for h, t in self._running.items() if t is me]:
                del self._running[hid]
                self._deferred.add(hid)
            self.wake.set()

    def _quorum(self, now: float) -> None:
        """Keep the time quorum was lost, and say when it is lost and regained."""
        engine = self.engine
        quorum = engine.peers.has_quorum()
        if quorum == self._had_quorum:
            return
        self._had_quorum = quorum
        self.view.mark_all()
        if quorum:
            self.view.minority_since = None
            engine.events.add("quorum", "quorum regained")
            return
        self.view.minority_since = now
        seen, total = engine.table.votes()
        wait = engine.tunables.get("QUORUM_RELEASE")
        engine.events.add(
            "quorum",
            f"lost quorum ({seen} of {total} votes): taking nothing over; giving resources up in {wait:g}s",
        )

    # -- a local failure the monitor could not repair ------------------------------

    async def local_failure(
        self, rid: str, ids: set[str], why: str, candidates: set[str] | None = None
    ) -> None:
        """The monitor's hand-off: recovery failed here; move the hierarchy to the next server
        (only to one of `candidates` when given: those that reach a responder on the
        subnet nobody answered on here, engine/noresponder.py).

        Called with the hierarchy's locks held: it takes the hierarchy down here,
        then hands it over on a task of its own, so that the locks are not held
        while another server brings it up (two servers handing over to each
        other would otherwise wait for each other's locks).
        """
        engine = self.engine
        tag = engine.tag(rid)
        reason = f"{tag} failed: {why}"
        started = time.monotonic()
        down = await engine.take_down(ids, reason, final=ResourceState.OSF)
        if not down.ok:
            # Something could not be stopped here: starting it elsewhere could run it twice.
            engine.events.add(
                "failover",
                f"not failing over: {engine.tag(down.failed or rid)} could not be taken down here ({down.reason})",
                tag=tag,
            )
            return
        # Others see this in our state reports and take it over even if the
        # hand-over below is lost (our network may be going down with it).
        engine.handed_over.add(ids)
        hid = engine.view.hierarchy_of(rid) or rid
        self._start(hid, lambda: self._hand_over(ids, tag, reason, started, candidates))

    async def _hand_over(
        self,
        ids: set[str],
        tag: str,
        reason: str,
        started: float,
        candidates: set[str] | None = None,
    ) -> None:
        engine = self.engine
        tried: set[str] = {engine.server}
        while True:
            where = placement(engine, ids)
            alive = engine.peers.alive() - tried
            decision = decide.on_local_failure(
                reason,
                where.priorities,
                alive if candidates is None else alive & (candidates | {engine.server}),
                engine.server,
                engine.peers.has_quorum(),
                where.failed,
            )
            engine.events.add("failover", decision.reason, tag=tag)
            if decision.action is not decide.Action.FAIL_OVER or decision.target is None:
                return
            try:
                await up_on(
                    engine, decision.target, ids, f"failover from {engine.server}: {reason}"
                )
                engine.metrics.failovers.labels(tag, "handed", "ok").inc()
                engine.metrics.failover_seconds.labels(tag, "handed").observe(
                    time.monotonic() - started
                )
                return
            except OpError as exc:
                engine.metrics.failovers.labels(tag, "handed", "failed").inc()
                engine.events.add(
                    "failover", f"{decision.target} could not take it: {exc.reason}", tag=tag
                )
                tried.add(decision.target)
