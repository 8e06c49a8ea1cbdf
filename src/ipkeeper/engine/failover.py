"""Failover, switchback and quorum: the cluster's decision loop (R22, R23, R32).

The loop wakes when membership changes, when a peer reports its states, and
every half second. For each hierarchy extended here it gathers who holds it
(placement.py), asks decide.plan what this server should do, and does it:
take over a hierarchy whose holder died (the live server with the best
priority acts; the others wait), give up a hierarchy that a better server
also holds (split brain healed), move a hierarchy back to a better server
that rejoined (automatic switchback), and, in a minority with
QUORUM=majority, take nothing over and give everything up after
QUORUM_RELEASE (the majority, for its part, waits that long and
QUORUM_GRACE more before taking over from a dead holder). A failed local
recovery (from the monitor) moves the hierarchy to the next server by
priority, one after the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable

from ipkeeper.engine import decide
from ipkeeper.engine.core import Engine
from ipkeeper.engine.errors import OpError
from ipkeeper.engine.moves import hierarchy_down, hierarchy_up, switch_back, up_on
from ipkeeper.engine.placement import Placement, anchor, placement, retire_dead_holders
from ipkeeper.model.states import ResourceState

log = logging.getLogger("ipkeeper.failover")

RETRY_FIRST, RETRY_MAX = (
    0.5,
    10.0,
)  # back-off between takeover tries while the address still answers


class Failover:
    """Decides and acts for this server; see the module docstring."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.wake = asyncio.Event()
        self.rejoined: set[str] = set()  # peers that came back and have not been considered yet
        self._waiting_states: set[str] = set()
        self._tried: dict[frozenset[str], tuple[float, int]] = {}  # last try, tries
        self._running: dict[frozenset[str], asyncio.Task[None]] = {}  # the latest per hierarchy
        self._tasks: set[asyncio.Task[None]] = set()
        self.minority_since: float | None = None
        self.started = time.monotonic()
        self._died_at: dict[str, float] = {}
        self._fencing: set[frozenset[str]] = set()  # takeovers told to wait (said once)

    def peer_changed(self, peer: str, alive: bool) -> None:
        """Membership listener: a peer died or came back."""
        self._tried.clear()  # a new situation: takeovers may be tried at once again
        if alive and self.engine.peers.has_reported(peer):
            self.rejoined.add(peer)  # its report arrived before its heartbeats proved it alive
        elif alive:
            self._waiting_states.add(peer)
        else:
            self._died_at[peer] = time.monotonic()
            self._waiting_states.discard(peer)
            self.rejoined.discard(peer)
        self.wake.set()

    def states_received(self, peer: str) -> None:
        """A peer reported its states: after a rejoin, it may now get hierarchies back."""
        if peer in self._waiting_states:
            self._waiting_states.discard(peer)
            self.rejoined.add(peer)
        self.wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Evaluate on every wake-up, and every half second, until `stop`."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), 0.5)
            self.wake.clear()
            try:
                await self.evaluate()
            except Exception:
                log.exception("failover evaluation failed")
        for task in self._tasks:
            task.cancel()

    async def evaluate(self) -> None:
        """One pass over every hierarchy extended here."""
        engine = self.engine
        alive = engine.peers.alive()
        quorum = engine.peers.has_quorum()
        self._quorum(quorum)
        rejoined, self.rejoined = self.rejoined, set()
        for ids in engine.graph().components():
            key = frozenset(ids)
            if key in self._running or any(engine.locks.busy(r) for r in ids):
                self.rejoined |= rejoined  # consider the rejoined peers again next time
                continue
            if not any(engine.repo.local_state(r) for r in ids):
                continue
            where = placement(engine, ids)
            if where.holders:
                engine.handed_over.discard(ids)  # somebody has it now
            stale = where.dead_holders | (where.abandoned - alive)
            if where.running and stale and retire_dead_holders(engine, ids):
                where = placement(engine, ids)
            decision = decide.plan(
                where.priorities,
                where.holders,
                where.dead_holders,
                where.failed,
                alive,
                engine.server,
                quorum,
                where.abandoned,
                where.running,
                where.unheard,
            )
            self._act(ids, where, decision, rejoined & alive)
            if engine.server in where.holders:
                self._tried.pop(key, None)

    def _act(
        self, ids: set[str], where: Placement, decision: decide.Decision, rejoined: set[str]
    ) -> None:
        """Start what `decision` asks for one hierarchy (or an automatic switchback)."""
        engine, key = self.engine, frozenset(ids)
        restore = decision.action is decide.Action.RESTORE
        fenced = restore and self._fenced(key, where.dead_holders)
        if not fenced:
            self._fencing.discard(key)
        if restore:
            if not fenced and self._may_try(key):
                self._start(key, lambda: self._take_over(ids, decision.reason))
        elif decision.action is decide.Action.REMOVE:
            self._start(key, lambda: hierarchy_down(engine, ids, decision.reason))
        elif engine.server in where.holders and where.switchback == "automatic":
            better = [
                s for s in rejoined
                if s in where.priorities and s not in where.failed
                and where.priorities[s] < where.priorities[engine.server]
            ]  # fmt: skip
            if better:
                best = min(better, key=lambda s: where.priorities[s])
                self._start(key, lambda: switch_back(engine, ids, best))

    def _fenced(self, key: frozenset[str], dead: frozenset[str]) -> bool:
        """With QUORUM=majority, True while a dead holder may only be cut off and
        still holding it: it gives it up after QUORUM_RELEASE in its minority, so
        the takeover waits that long and QUORUM_GRACE more (R32)."""
        tunables = self.engine.tunables
        if not dead or tunables.get("QUORUM") != "majority":
            return False
        wait = tunables.get("QUORUM_RELEASE") + tunables.get("QUORUM_GRACE")
        since = max(self._died_at.get(s, self.started) for s in dead)
        left = since + wait - time.monotonic()
        if left <= 0:
            return False
        if key not in self._fencing:
            self._fencing.add(key)
            self.engine.events.add(
                "failover",
                f"{', '.join(sorted(dead))} died holding it; waiting {left:.1f}s before taking it "
                "over, so that a holder that is only cut off has given it up (QUORUM=majority)",
                tag=self.engine.tag(anchor(self.engine, set(key))),
            )
            asyncio.get_running_loop().call_later(left, self.wake.set)
        return True

    def _may_try(self, key: frozenset[str]) -> bool:
        """Take over at once; after a failed try, wait 0.5 s, 1 s, 2 s ... up to 10 s."""
        now = time.monotonic()
        last, tries = self._tried.get(key, (0.0, 0))
        if tries and now - last < min(RETRY_FIRST * 2 ** (tries - 1), RETRY_MAX):
            return False
        self._tried[key] = (now, tries + 1)
        return True

    def _start(self, key: frozenset[str], work: Callable[[], Awaitable[object]]) -> None:
        """Run `work()` for hierarchy `key` on a task, after any still running for it."""
        before = self._running.get(key)

        async def guarded() -> None:
            try:
                if before is not None:
                    await asyncio.wait({before})
                await work()
            except OpError as exc:
                log.info("%s", exc)
            except Exception:
                log.exception("failover action failed")
            finally:
                if self._running.get(key) is asyncio.current_task():
                    del self._running[key]
                self.wake.set()

        task = asyncio.create_task(guarded())
        self._running[key] = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _take_over(self, ids: set[str], reason: str) -> None:
        engine = self.engine
        tag = engine.tag(anchor(engine, ids))
        engine.events.add("failover", reason, tag=tag)
        started = time.monotonic()
        try:
            await hierarchy_up(engine, ids, reason)
        except OpError:
            engine.metrics.failovers.labels(tag, "taken", "failed").inc()
            raise
        engine.metrics.failovers.labels(tag, "taken", "ok").inc()
        engine.metrics.failover_seconds.labels(tag, "taken").observe(time.monotonic() - started)

    def _quorum(self, quorum: bool) -> None:
        engine = self.engine
        if quorum:
            if self.minority_since is not None:
                engine.events.add("quorum", "quorum regained")
            self.minority_since = None
            return
        now = time.monotonic()
        wait = engine.tunables.get("QUORUM_RELEASE")
        if self.minority_since is None:
            self.minority_since = now
            seen, total = engine.peers.quorum()["votes"], engine.peers.quorum()["of"]
            engine.events.add(
                "quorum",
                f"lost quorum ({seen} of {total} votes): taking nothing over; giving resources up in {wait:g}s",
            )
            asyncio.get_running_loop().call_later(wait, self.wake.set)
        if now - self.minority_since < wait:
            return
        # On every pass, not once: nothing may stay up in a minority.
        why = f"no quorum for {wait:g}s: giving it up (R32)"
        for ids in engine.graph().components():
            held = [r for r in ids if (st := engine.state(r)) is not None and st.in_service]
            if held and frozenset(ids) not in self._running:
                self._start(frozenset(ids), functools.partial(hierarchy_down, engine, ids, why))

    async def local_failure(self, rid: str, ids: set[str], why: str) -> None:
        """The monitor's hand-off: recovery failed here; move the hierarchy to the next server.

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
        self._start(frozenset(ids), lambda: self._hand_over(ids, tag, reason, started))

    async def _hand_over(self, ids: set[str], tag: str, reason: str, started: float) -> None:
        engine = self.engine
        tried: set[str] = {engine.server}
        while True:
            where = placement(engine, ids)
            decision = decide.on_local_failure(
                reason,
                where.priorities,
                engine.peers.alive() - tried,
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
