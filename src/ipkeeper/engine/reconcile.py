"""Start-up reconciliation: make the store and the system agree, and say so (R31).

Each instance here is probed (is the address up? does the check pass?) and
compared with what the store recorded; interrupted actions are finished.
Every difference becomes an event with its resolution; nothing is ignored.
"""

from __future__ import annotations

import asyncio

from ipkeeper.engine import decide
from ipkeeper.engine.admin import finish_delete
from ipkeeper.engine.core import Engine
from ipkeeper.engine.placement import placement
from ipkeeper.model.states import EXTENDED_HERE, ResourceState
from ipkeeper.store.repo import ResourceRecord


async def probe(engine: Engine, rid: str) -> bool:
    """Is the resource active on this server right now? (False when the probe fails.)"""
    return (await probe_all(engine, [rid])).get(rid, False)


async def probe_all(engine: Engine, rids: list[str]) -> dict[str, bool]:
    """Is each resource active on this server right now? A kit that can answer for many
    at once (`probe_many`) is asked once; a probe that fails answers False."""
    by_kind: dict[str, list[ResourceRecord]] = {}
    for rid in rids:
        rec = engine.repo.resource(rid)
        if rec is not None and rec.instance(engine.server) is not None:
            by_kind.setdefault(rec.kind, []).append(rec)
    loop = asyncio.get_running_loop()
    found: dict[str, bool] = {}
    for kind, recs in by_kind.items():
        kit = engine.kits.get(kind)
        instances = [engine.instance(rec) for rec in recs]
        limit = engine.timeout(recs[0], "quick_check") + 0.01 * len(recs)
        many = getattr(kit, "probe_many", None)
        try:
            if many is not None:
                answers = await asyncio.wait_for(
                    loop.run_in_executor(engine.pool, many, instances), limit
                )
            else:
                answers = await asyncio.gather(
                    *(
                        asyncio.wait_for(loop.run_in_executor(engine.pool, kit.probe, i), limit)
                        for i in instances
                    ),
                    return_exceptions=True,
                )
        except Exception:
            answers = [False] * len(recs)
        found.update({rec.id: answer is True for rec, answer in zip(recs, answers, strict=True)})
    return found


async def reconcile(engine: Engine, only: set[str] | None = None) -> dict[str, decide.Decision]:
    """Decide and carry out what every local instance needs (or only those of `only`:
    definitions learnt from a peer after start-up); returns the decisions."""
    states = engine.repo.local_states()
    if only is not None:
        states = {rid: st for rid, st in states.items() if rid in only}
    active = await probe_all(engine, list(states))
    decisions: dict[str, decide.Decision] = {}
    for ids in engine.graph().components():
        mine = [rid for rid in sorted(ids) if rid in states]
        if not mine:
            continue
        where = placement(engine, ids)
        # What is up here gives way only to a server really running it when the
        # hierarchy has an address: one still bringing it up would find the
        # address taken and give up, and then nobody would hold it. Without an
        # address nothing would stop that server, so any holder counts.
        for rid in mine:
            st, up = states[rid], active.get(rid, False)
            holders = (where.running if up and where.addressed else where.holders) - {engine.server}
            learnt = st.reason == EXTENDED_HERE
            decision = decide.defer_to_holders(
                decide.reconcile(st.state, st.pending, up, learnt), set(holders), up
            )
            decisions[rid] = decision
    with engine.repo.db.transaction():
        for rid, decision in decisions.items():
            if decision.action is not decide.Action.NOTHING:
                kind = "adopted" if decision.action is decide.Action.ADOPT else "reconcile"
                engine.events.add(kind, decision.reason, tag=engine.tag(rid))
    await _carry_out(engine, decisions)
    return decisions


def _having(decisions: dict[str, decide.Decision], *actions: decide.Action) -> set[str]:
    return {rid for rid, d in decisions.items() if d.action in actions}


async def _carry_out(engine: Engine, decisions: dict[str, decide.Decision]) -> None:
    """Carry the decisions out: deletions hierarchy by hierarchy, then every take-down
    (each hierarchy's on its own, together), then every bring-up in one batch."""
    doomed = _having(decisions, decide.Action.FINISH_DELETE)
    if doomed:
        await _finish_deletions(engine, doomed)
        decisions = {r: d for r, d in decisions.items() if engine.repo.resource(r) is not None}
    with engine.repo.db.transaction():
        for rid in _having(decisions, decide.Action.STAND_DOWN):
            engine.repo.set_state(rid, ResourceState.OSU, decisions[rid].reason)
        for rid in _having(decisions, decide.Action.ADOPT):
            st, rec = engine.repo.local_state(rid), engine.repo.resource(rid)
            if st is not None and rec is not None and not st.state.in_service:
                engine.repo.set_state(rid, engine.in_service_state(rec), decisions[rid].reason)
        for rid in _having(decisions, decide.Action.REMOVE):
            st = engine.repo.local_state(rid)
            if st is not None:
                engine.repo.set_state(rid, st.state, st.reason, pending=st.pending or "remove")
        restoring = _having(decisions, decide.Action.RESTORE, decide.Action.FINISH_CREATE)
        for rid in restoring:
            st = engine.repo.local_state(rid)
            if st is not None:
                engine.repo.set_state(rid, st.state, st.reason, pending=st.pending or "restore")
    removing = _having(decisions, decide.Action.REMOVE)
    by_hierarchy = _per_hierarchy(engine, removing)
    await asyncio.gather(*(engine.take_down(ids, "reconciled at start-up") for ids in by_hierarchy))
    groups = [(ids, "reconciled at start-up") for ids in _per_hierarchy(engine, restoring)]
    results = await engine.bring_up_many(groups) if groups else []
    if any(not r.ok for r in results):
        # A creation whose bring-up failed was marked for deletion by bring_up.
        leftovers = {
            rid
            for rid, st in engine.repo.local_states().items()
            if rid in restoring and st.pending == "delete"
        }
        if leftovers:
            await _finish_deletions(engine, leftovers)


def _per_hierarchy(engine: Engine, rids: set[str]) -> list[set[str]]:
    """`rids` split by the hierarchy each belongs to."""
    groups: dict[frozenset[str], set[str]] = {}
    for rid in rids:
        groups.setdefault(engine.view.members_of(rid), set()).add(rid)
    return list(groups.values())


async def _finish_deletions(engine: Engine, doomed: set[str]) -> None:
    doomed |= {a for r in doomed for a in engine.graph().ancestors(r)}
    versions = {
        rid: (rec.version + 1, rec.tag_on(engine.server))
        for rid in doomed
        if (rec := engine.repo.resource(rid))
    }
    if await finish_delete(engine, doomed):
        for rid, (version, tag) in versions.items():
            engine.peers.publish_deletion(rid, version, tag)
