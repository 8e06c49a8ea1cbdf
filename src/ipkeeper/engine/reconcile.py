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
from ipkeeper.model.states import ResourceState


async def probe(engine: Engine, rid: str) -> bool:
    """Is the resource active on this server right now? (False when the probe fails.)"""
    rec = engine.repo.resource(rid)
    if rec is None or rec.instance(engine.server) is None:
        return False
    kit = engine.kits.get(rec.kind)
    loop = asyncio.get_running_loop()
    try:
        return bool(
            await asyncio.wait_for(
                loop.run_in_executor(engine.pool, kit.probe, engine.instance(rec)),
                engine.timeout(rec, "quick_check"),
            )
        )
    except Exception:
        return False


async def reconcile(engine: Engine) -> dict[str, decide.Decision]:
    """Decide and carry out what every local instance needs; returns the decisions."""
    decisions: dict[str, decide.Decision] = {}
    for rid, st in engine.repo.local_states().items():
        active = await probe(engine, rid)
        ids = engine.hierarchy_of(rid)
        where = placement(engine, ids)
        # What is up here gives way only to a server really running it when the
        # hierarchy has an address: one still bringing it up would find the
        # address taken and give up, and then nobody would hold it. Without an
        # address nothing would stop that server, so any holder counts.
        guarded = any((r := engine.repo.resource(x)) is not None and r.kind == "ip" for x in ids)
        holders = (where.running if active and guarded else where.holders) - {engine.server}
        decision = decide.defer_to_holders(
            decide.reconcile(st.state, st.pending, active), set(holders), active
        )
        decisions[rid] = decision
        if decision.action is not decide.Action.NOTHING:
            kind = "adopted" if decision.action is decide.Action.ADOPT else "reconcile"
            engine.events.add(kind, decision.reason, tag=engine.tag(rid))
    await _carry_out(engine, decisions)
    return decisions


def _having(decisions: dict[str, decide.Decision], *actions: decide.Action) -> set[str]:
    return {rid for rid, d in decisions.items() if d.action in actions}


async def _carry_out(engine: Engine, decisions: dict[str, decide.Decision]) -> None:
    """Carry the decisions out hierarchy by hierarchy, so that one failure stays its own."""
    for ids in engine.graph().components():
        mine = {rid: d for rid, d in decisions.items() if rid in ids}
        if mine:
            await _carry_out_hierarchy(engine, mine)


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


async def _carry_out_hierarchy(engine: Engine, decisions: dict[str, decide.Decision]) -> None:
    doomed = _having(decisions, decide.Action.FINISH_DELETE)
    if doomed:
        await _finish_deletions(engine, doomed)
        decisions = {
            rid: d for rid, d in decisions.items() if engine.repo.resource(rid) is not None
        }
    for rid in _having(decisions, decide.Action.STAND_DOWN):
        engine.repo.set_state(rid, ResourceState.OSU, decisions[rid].reason)
    removing = _having(decisions, decide.Action.REMOVE)
    for rid in removing:
        st = engine.repo.local_state(rid)
        if st is not None:
            engine.repo.set_state(rid, st.state, st.reason, pending=st.pending or "remove")
    if removing:
        await engine.take_down(removing, "reconciled at start-up")
    restoring = _having(decisions, decide.Action.RESTORE, decide.Action.FINISH_CREATE)
    for rid in restoring:
        st = engine.repo.local_state(rid)
        if st is not None:
            engine.repo.set_state(rid, st.state, st.reason, pending=st.pending or "restore")
    if restoring:
        result = await engine.bring_up(restoring, "reconciled at start-up")
        if not result.ok:
            # A creation whose bring-up failed was marked for deletion by bring_up.
            leftovers = {
                rid
                for rid, st in engine.repo.local_states().items()
                if rid in restoring and st.pending == "delete"
            }
            if leftovers:
                await _finish_deletions(engine, leftovers)
