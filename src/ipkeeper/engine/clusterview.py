"""Builds the frozen ClusterView (model/view.py) that decisions read, and keeps it current
with work proportional to what changed.

It is told of every change: a local state or a definition (the store's
mirror), a peer's report or liveness (the peer table). Each change marks the
hierarchies it concerns, and only those are rebuilt and handed to the
decision loop as "changed": an event about one hierarchy touches that
hierarchy; a peer's death touches what is extended to that peer. A change
of dependencies (hierarchies merging or splitting) marks them all.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import replace

from ipkeeper.engine.peertable import PeerTable
from ipkeeper.model.guard import guarded
from ipkeeper.model.hierarchy import Hierarchy
from ipkeeper.model.states import ResourceState
from ipkeeper.model.view import (
    Attempt,
    ClusterView,
    HierarchyId,
    HierarchyView,
    PeerView,
    Place,
    QuorumView,
)
from ipkeeper.store.repo import Repo, StoredSet


def anchor_of(repo: Repo, graph: Hierarchy, ids: Iterable[str], me: str) -> str:
    """The resource whose priorities rank servers for the whole hierarchy: its first root."""
    members = set(ids)
    roots = graph.roots(members) or sorted(members)

    def key(rid: str) -> tuple[str, str]:
        rec = repo.resource(rid)
        return (rec.tag_on(me) if rec else rid, rid)

    return min(roots, key=key)


class ViewBuilder:
    """The owner of the cluster view; see the module docstring."""

    def __init__(
        self,
        me: str,
        repo: Repo,
        table: PeerTable,
        handed_over: StoredSet,
        clock: Callable[[], float] = time.monotonic,
        withdrawn: StoredSet | None = None,
    ) -> None:
        self.me = me
        self.repo = repo
        self.table = table
        self.handed_over = handed_over
        self.withdrawn = withdrawn
        self.clock = clock
        self.quorum_mode: Callable[[], str] = lambda: "none"
        self.minority_since: float | None = None
        self.attempts: dict[HierarchyId, Attempt] = {}
        self.on_change: list[Callable[[], None]] = []  # something was marked changed
        self._graph: Hierarchy | None = None
        self._of: dict[str, HierarchyId] = {}  # member -> its hierarchy
        self._members: dict[HierarchyId, frozenset[str]] = {}
        self._cache: dict[HierarchyId, HierarchyView] = {}
        self._stale: set[HierarchyId] = set()
        self._changed: set[HierarchyId] = set()
        self._held_since: dict[HierarchyId, float] = {}
        self._dual: set[HierarchyId] = set()  # running here and elsewhere, not announced since
        self._pending_rids: set[str] = set()
        self._pending_servers: set[str] = set()
        self._pending_all = False
        repo.listeners.append(self._state_changed)
        repo.definition_listeners.append(self._definitions_changed)
        table.listeners.append(self._peer_changed)

    # -- being told ----------------------------------------------------------------
    #
    # Marks are only noted here and resolved to hierarchies at the next pass
    # (`_resolve`): a thousand changes between two passes cost one pass.

    def _noted(self) -> None:
        for listener in self.on_change:
            listener()

    def mark_resources(self, resource_ids: Iterable[str]) -> None:
        """Something about these resources changed (a lock released, a timer ran out)."""
        self._pending_rids.update(resource_ids)
        self._noted()

    def mark_all(self) -> None:
        """Everything is to be decided again (membership or quorum changed)."""
        self._pending_all = True
        self._noted()

    def _state_changed(self, rid: str) -> None:
        self.mark_resources([rid])

    def _definitions_changed(self, rids: set[str]) -> None:
        # A new graph (hierarchies merged or split) is looked at by _structure.
        self.mark_resources(rids)

    def _peer_changed(self, peer: str, rids: set[str] | None) -> None:
        if rids is None:
            self._pending_servers.add(peer)
            self._noted()
        else:
            self.mark_resources(rids)

    def _resolve(self) -> None:
        """Turn what was noted into stale and changed hierarchies."""
        self._structure()
        marked: set[HierarchyId] = set()
        if self._pending_all:
            marked = set(self._members)
        else:
            marked = {self._of[r] for r in self._pending_rids if r in self._of}
            for server in self._pending_servers:
                marked |= {
                    hid
                    for hid in self._members
                    if (cached := self._cache.get(hid)) is None or server in cached.places
                }
        self._pending_rids.clear()
        self._pending_servers.clear()
        self._pending_all = False
        self._stale |= marked
        self._changed |= marked

    # -- building ------------------------------------------------------------------

    def _structure(self) -> None:
        graph = self.repo.graph()
        if graph is self._graph:
            return
        self._graph = graph
        old = self._members
        self._members = {}
        self._of.clear()
        for component in graph.components():
            hid = anchor_of(self.repo, graph, component, self.me)
            self._members[hid] = frozenset(component)
            for rid in component:
                self._of[rid] = hid
        different = {h for h, m in self._members.items() if old.get(h) != m}
        self._cache = {h: v for h, v in self._cache.items() if h in self._members}
        self._held_since = {h: t for h, t in self._held_since.items() if h in self._members}
        self._stale |= different
        self._changed |= different

    def hierarchy_of(self, resource_id: str) -> HierarchyId | None:
        """The id of the hierarchy a resource belongs to."""
        self._structure()
        return self._of.get(resource_id)

    def members_of(self, resource_id: str) -> frozenset[str]:
        """Every resource of the hierarchy `resource_id` belongs to (itself when unknown)."""
        self._structure()
        hid = self._of.get(resource_id)
        return self._members[hid] if hid is not None else frozenset({resource_id})

    def has_news(self) -> bool:
        """True when something was marked since the decision loop last looked."""
        return bool(
            self._changed or self._pending_rids or self._pending_servers or self._pending_all
        )

    def take_changed(self) -> set[HierarchyId]:
        """The hierarchies marked changed since the last call (for the decision loop)."""
        self._resolve()
        changed, self._changed = self._changed, set()
        return changed & set(self._members)

    def view(self) -> ClusterView:
        """The frozen view now (only stale hierarchies are rebuilt)."""
        self._resolve()
        for hid in self._stale:
            members = self._members.get(hid)
            if members is None:
                self._cache.pop(hid, None)
                continue
            built = self.describe(members, hid)
            self._cache[hid] = replace(
                built, held_since=self._track_holding(hid, built), dual=self._track_dual(hid, built)
            )
        self._stale.clear()
        seen, total = self.table.votes()
        peers = {
            name: PeerView(
                name,
                rec.alive,
                rec.witness,
                rec.reported and rec.ready,
                rec.died_at,
                rec.joined_at,
                rec.sees,
            )
            for name, rec in self.table.peers.items()
        }
        return ClusterView(
            self.me,
            self.table.started,
            peers,
            QuorumView(self.quorum_mode(), seen, total, self.minority_since),
            dict(self._cache),
            dict(self.attempts),
        )

    def _track_dual(self, hid: HierarchyId, built: HierarchyView) -> bool:
        """Whether this server has run the hierarchy alongside another since it last
        announced it: once the other gives it up, this one must announce it again."""
        if self.me not in built.running:
            self._dual.discard(hid)
        elif len(built.running) > 1:
            self._dual.add(hid)
        return hid in self._dual

    def announced(self, hid: HierarchyId) -> None:
        """The hierarchy was announced from here after a dual ended."""
        self._dual.discard(hid)
        self._stale.add(hid)

    def _track_holding(self, hid: HierarchyId, built: HierarchyView) -> float | None:
        """Since when this server holds the hierarchy (first seen holding it)."""
        here = built.places.get(self.me)
        if here is not None and here.holding:
            return self._held_since.setdefault(hid, self.clock())
        self._held_since.pop(hid, None)
        return None

    def describe(self, ids: Iterable[str], hid: HierarchyId | None = None) -> HierarchyView:
        """The view of any set of resources as one hierarchy (cached or not)."""
        members = frozenset(ids)
        self._structure()
        graph = self.repo.graph()
        anchor = hid if hid is not None else anchor_of(self.repo, graph, members, self.me)
        records = [r for rid in members if (r := self.repo.resource(rid)) is not None]
        servers: set[str] | None = None
        for rec in records:
            names = {i.server for i in rec.instances}
            servers = names if servers is None else servers & names
        key = self.repo.resource(anchor)
        places: dict[str, Place] = {}
        if key is not None and servers:
            for inst in key.instances:
                if inst.server in servers:
                    places[inst.server] = self._place(inst.server, inst.priority, members)
        extended_here = any(r.instance(self.me) is not None for r in records)
        kinds = {r.id: r.kind for r in records}
        return HierarchyView(
            anchor,
            members,
            key.tag_on(self.me) if key else anchor,
            key.switchback if key else "intelligent",
            all(guarded(graph, kinds, r.id) for r in records),
            places,
            extended_here,
            withdrawn=self.withdrawn is not None and any(r in self.withdrawn for r in members),
            addressed=any(kind == "ip" for kind in kinds.values()),
        )

    def _place(self, server: str, priority: int, members: frozenset[str]) -> Place:
        holding = running = failed = handover = False
        if server == self.me:
            for rid in members:
                st = self.repo.local_state(rid)
                if st is not None:
                    in_service = st.state.in_service
                    holding |= in_service or st.pending in ("restore", "create")
                    running |= in_service
                    failed |= st.state is ResourceState.OSF
                handover |= rid in self.handed_over
            return Place(priority, True, True, holding, running, failed, handover)
        rec = self.table.get(server)
        alive = rec is not None and rec.alive
        states = rec.states if rec is not None else {}
        for rid in members:
            entry = states.get(rid)
            if entry is None:
                continue
            holding |= entry.holding
            running |= entry.state is not None and entry.state.in_service
            failed |= entry.state is ResourceState.OSF
            handover |= entry.handover
        reported = rec is not None and rec.reported and rec.ready
        return Place(priority, alive, reported, holding, running, failed, handover)
