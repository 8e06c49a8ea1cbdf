"""Where a hierarchy is, and where it could go: the view of any set of resources.

The facts come from the view builder (engine/clusterview.py): this server's
store and each peer's last report in the peer table. A peer that is not
alive counts as holding nothing; what it held when it died is its "dead
holdings".
"""

from __future__ import annotations

from ipkeeper.engine.clusterview import anchor_of
from ipkeeper.engine.core import Engine
from ipkeeper.model.states import ResourceState
from ipkeeper.model.view import HierarchyView


def state_on(engine: Engine, server: str, rid: str) -> tuple[ResourceState | None, str | None]:
    """(state, pending) of a resource on a server, as known here."""
    if server == engine.server:
        st = engine.repo.local_state(rid)
        return (st.state, st.pending) if st else (None, None)
    reported = engine.table.states_of(server).get(rid)
    if reported is None:
        return None, None
    return reported.state, reported.pending


def anchor(engine: Engine, ids: set[str]) -> str:
    """The resource whose priorities rank servers for the whole hierarchy: its first root."""
    return anchor_of(engine.repo, engine.graph(), ids, engine.server)


def placement(engine: Engine, ids: set[str]) -> HierarchyView:
    """Who holds `ids` (taken as one hierarchy) and who could take it, as known now."""
    return engine.view.describe(ids)


def hosts(engine: Engine, ids: set[str]) -> dict[str, int]:
    """Servers where every resource of the hierarchy is extended, with their priority."""
    return placement(engine, ids).priorities


def retire_dead_holders(engine: Engine, ids: set[str]) -> bool:
    """Servers not alive no longer count as holding or handing over `ids`
    (see PeerTable.forget_holding); True when that changed anything.

    Called while a live server runs the hierarchy and when it is taken out of
    service: from then on, a death long past must not bring it up again.
    """
    changed = False
    for server in hosts(engine, ids):
        if not engine.table.is_alive(server):
            changed = engine.table.forget_holding(server, ids) or changed
    return changed
