"""Where a hierarchy is, and where it could go: facts gathered for decisions.

States come from this server's store and from what each peer last reported;
a peer that is not alive counts as holding nothing (its last report is kept
separately, as what it held when it died).
"""

from __future__ import annotations

from dataclasses import dataclass

from ipkeeper.engine.core import Engine
from ipkeeper.model.states import ResourceState


def state_on(engine: Engine, server: str, rid: str) -> tuple[ResourceState | None, str | None]:
    """(state, pending) of a resource on a server, as known here."""
    if server == engine.server:
        st = engine.repo.local_state(rid)
        return (st.state, st.pending) if st else (None, None)
    reported = engine.peers.states_of(server).get(rid)
    if not reported or not reported.get("state"):
        return None, None
    return ResourceState(reported["state"]), reported.get("pending")


def handed_over(engine: Engine, server: str, rid: str) -> bool:
    """True when `server` gave `rid` up after a failure and nobody has taken it since."""
    if server == engine.server:
        return rid in engine.handed_over
    return bool(engine.peers.states_of(server).get(rid, {}).get("handover"))


def anchor(engine: Engine, ids: set[str]) -> str:
    """The resource whose priorities rank servers for the whole hierarchy: its first root."""
    roots = engine.graph().roots(ids)
    return min(roots or ids, key=lambda rid: (engine.tag(rid), rid))


def hosts(engine: Engine, ids: set[str]) -> dict[str, int]:
    """Servers where every resource of the hierarchy is extended, with their priority."""
    records = [engine.repo.resource(rid) for rid in ids]
    servers: set[str] | None = None
    for rec in records:
        if rec is None:
            continue
        names = {i.server for i in rec.instances}
        servers = names if servers is None else servers & names
    key = engine.repo.resource(anchor(engine, ids))
    if key is None or servers is None:
        return {}
    return {i.server: i.priority for i in key.instances if i.server in servers}


def retire_dead_holders(engine: Engine, ids: set[str]) -> bool:
    """Servers not alive no longer count as holding or handing over `ids`
    (see Peers.forget_holding); True when that changed anything.

    Called while a live server runs the hierarchy and when it is taken out of
    service: from then on, a death long past must not bring it up again.
    """
    alive = engine.peers.alive()
    changed = False
    for server in hosts(engine, ids):
        if server not in alive:
            changed = engine.peers.forget_holding(server, ids) or changed
    return changed


@dataclass(frozen=True)
class Placement:
    """Who holds a hierarchy and who could take it."""

    ids: frozenset[str]
    priorities: dict[str, int]  # servers with the whole hierarchy extended
    holders: frozenset[str]  # live servers with any member in service (or coming up)
    running: frozenset[str]  # live servers with a member actually in service (not just coming up)
    dead_holders: frozenset[str]  # servers not alive whose last report had it in service
    failed: frozenset[str]  # servers where a member is OSF
    abandoned: frozenset[str]  # servers that gave it up after a failure, for another to take
    unheard: frozenset[str]  # live servers that have not reported their states since they came back
    switchback: str


def placement(engine: Engine, ids: set[str]) -> Placement:
    """Gather the facts about one hierarchy."""
    alive = engine.peers.alive()
    prio = hosts(engine, ids)
    holders: set[str] = set()
    running: set[str] = set()
    dead: set[str] = set()
    failed: set[str] = set()
    abandoned: set[str] = set()
    for server in prio:
        for rid in ids:
            state, pending = state_on(engine, server, rid)
            holding = (state is not None and state.in_service) or pending in ("restore", "create")
            if holding:
                (holders if server in alive else dead).add(server)
            if state is not None and state.in_service and server in alive:
                running.add(server)
            if state is ResourceState.OSF:
                failed.add(server)
            if handed_over(engine, server, rid):
                abandoned.add(server)
    key = engine.repo.resource(anchor(engine, ids))
    return Placement(
        frozenset(ids),
        prio,
        frozenset(holders),
        frozenset(running),
        frozenset(dead),
        frozenset(failed),
        frozenset(abandoned),
        frozenset(
            s
            for s in prio
            if s in alive and s != engine.server and not engine.peers.has_reported(s)
        ),
        key.switchback if key else "intelligent",
    )
