"""A VIP that nobody on its subnet answers for (issue 11, item 8).

When an IP resource's check fails only at reachability (its address is there,
its link is up, its pings leave and nobody answers) and local recovery does
not repair it, moving it helps only if another server finds a responder on
that subnet. With NO_RESPONDER=keep (the default), before handing the
hierarchy over, the holder asks every other live server it is extended to to
test the subnet from its own address (the served `reach` request, the same
kit code as the check: `reach_here`). It hands the hierarchy over only to a
server that reached a responder; if none did, the resource stays in service
here as ISU, with the reason in its state and an event ("kept in service
unprotected: no responder on 198.18.0.0/24 from any server (s1, s2)"), and
counts in `status` ("unprotected") and the metric
`ipkeeper_unprotected_resources`. The monitor keeps checking it every
CHECK_INTERVAL: when the check passes again it is ISP again ("responder on
... answers again: protected"); while it fails the same way, the others are
asked again every REASK_EVERY seconds, and it moves once one of them
reaches a responder. A different failure (the address or the link) while
kept is handled as any failure.

The decisions are pure (decide.no_responder, decide.on_unreachable); this
module asks, records and remembers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ipkeeper.engine import decide
from ipkeeper.engine.core import Engine
from ipkeeper.model.states import KitResult, ResourceState
from ipkeeper.store.repo import ResourceRecord

log = logging.getLogger("ipkeeper.noresponder")

REASK_EVERY = 10.0  # seconds between asks of the other servers while a resource is kept


@dataclass
class Kept:
    """A resource kept in service unprotected here: its subnet, why, and when the other
    servers were last asked (monotonic)."""

    subnet: str
    reason: str
    asked: float


async def reach_here(engine: Engine, resource_id: str) -> dict[str, Any]:
    """The `reach` request a peer serves: would this server's check of the resource find
    a responder on its subnet? {"ok", "no_responder", "reason"}; a server that does not
    carry it, or whose kit has no such test, cannot tell."""
    rec = engine.repo.resource(resource_id)
    if rec is None or rec.instance(engine.server) is None:
        return {"ok": False, "no_responder": False, "reason": f"not extended to {engine.server}"}
    test = getattr(engine.kits.get(rec.kind), "reach_from_here", None)
    if test is None:
        return {"ok": False, "no_responder": False, "reason": f"{rec.kind} has no such test"}
    loop = asyncio.get_running_loop()
    result: KitResult = await loop.run_in_executor(engine.pool, test, engine.instance(rec))
    return {"ok": result.ok, "no_responder": decide.no_responder(result), "reason": result.reason}


class NoResponder:
    """What this server keeps in service unprotected; see the module docstring."""

    def __init__(self, engine: Engine, clock: Callable[[], float] = time.monotonic) -> None:
        self.engine = engine
        self.clock = clock
        self.kept: dict[str, Kept] = {}

    def policy(self) -> str:
        """NO_RESPONDER in force now."""
        return str(self.engine.tunables.get("NO_RESPONDER"))

    def applies(self, result: KitResult, repaired: KitResult | None) -> bool:
        """True when a failure the monitor could not repair is nobody answering, and the
        policy is to keep such a resource (a recovery that failed otherwise is not)."""
        return (
            self.policy() == "keep"
            and decide.no_responder(result)
            and (repaired is None or decide.no_responder(repaired))
        )

    def due(self, resource_id: str) -> bool:
        """Time to ask the other servers again about a kept resource."""
        kept = self.kept.get(resource_id)
        return kept is None or self.clock() - kept.asked >= REASK_EVERY

    async def ask(self, rec: ResourceRecord) -> dict[str, tuple[decide.Reach, str]]:
        """Every other live server the resource is extended to, tested from its side."""
        engine = self.engine
        alive = engine.peers.alive()
        others = sorted(
            i.server for i in rec.instances if i.server != engine.server and i.server in alive
        )
        tunables = engine.tunables
        timeout = tunables.get("IP_PINGTIME") * (tunables.get("IP_PINGTRIES") + 1) + 5.0

        async def one(server: str) -> tuple[decide.Reach, str]:
            try:
                answer = await engine.peers.request(server, "reach", {"id": rec.id}, timeout)
            except Exception as exc:  # an older server, a lost path: it cannot tell
                return decide.Reach.UNKNOWN, f"not answered ({getattr(exc, 'reason', exc)})"
            reason = str(answer.get("reason", ""))
            if answer.get("ok") is True:
                return decide.Reach.REACHED, reason
            if answer.get("no_responder") is True:
                return decide.Reach.NONE, reason
            return decide.Reach.UNKNOWN, reason

        found = await asyncio.gather(*(one(s) for s in others))
        return dict(zip(others, found, strict=True))

    async def judge(
        self, rec: ResourceRecord, why: str, result: KitResult
    ) -> tuple[decide.Decision, set[str]]:
        """Ask the others and decide (decide.on_unreachable): the decision, and the servers
        that reached a responder (the only ones a hand-over may go to)."""
        engine = self.engine
        subnet = str(result.details.get("subnet", "its subnet"))
        answers = await self.ask(rec) if self.policy() == "keep" else {}
        if rec.id in self.kept:
            self.kept[rec.id].asked = self.clock()
        priorities = {i.server: i.priority for i in rec.instances}
        failed = {
            s
            for s in priorities
            if s != engine.server
            and (r := engine.peers.states_of(s).get(rec.id)) is not None
            and r.state is ResourceState.OSF
        }
        decision = decide.on_unreachable(
            why, subnet, self.policy(), engine.server, answers, priorities, failed
        )
        reached = {s for s, (r, _) in answers.items() if r is decide.Reach.REACHED}
        for server, (reach, reason) in sorted(answers.items()):
            log.info("[%s] %s tested %s: %s (%s)", rec.id, server, subnet, reach.value, reason)
        return decision, reached

    def keep(self, rec: ResourceRecord, decision: decide.Decision, result: KitResult) -> None:
        """Keep the resource in service here, unprotected (ISU), saying why; said again
        only when the reason changes."""
        engine = self.engine
        subnet = str(result.details.get("subnet", "its subnet"))
        kept = self.kept.get(rec.id)
        if kept is not None and kept.reason == decision.reason:
            return
        self.kept[rec.id] = Kept(subnet, decision.reason, self.clock())
        engine.unprotected[rec.id] = decision.reason
        log.warning("[%s@%s] %s", rec.tag_on(engine.server), engine.server, decision.reason)
        engine.record(rec, ResourceState.ISU, "unprotected", decision.reason)

    def protected(self, rec: ResourceRecord, result: KitResult) -> None:
        """The check of a kept resource passed: ISP again, and said so."""
        kept = self.kept.get(rec.id)
        subnet = kept.subnet if kept is not None else "its subnet"
        self.discard(rec.id)
        self.engine.record(
            rec,
            ResourceState.ISP,
            "protected",
            f"responder on {subnet} answers again: protected ({result.reason})",
        )

    def discard(self, resource_id: str) -> None:
        """The resource is not kept any more (protected again, taken down, deleted)."""
        self.kept.pop(resource_id, None)
        self.engine.unprotected.pop(resource_id, None)
