"""What keeps a resource from running on two servers at once when the comm paths are cut
(pure: over the resources' kinds, their servers and the dependencies).

Under QUORUM=majority the quorum does: a server that sees at most half the
votes brings nothing up, and a takeover waits for a cut-off holder to give up
(R32). Under QUORUM=none only the IP kit's unique-address check does (R6): an
IP resource is not brought up while its address still answers elsewhere.
Children come up before their parents, so that check stops a resource only
when an IP resource is among what it depends on, directly or not: an
application with an IP resource below it never starts where the address is
still answered. One with none below it (an application-only hierarchy, or an
application that is the child of an IP resource, so brought up before it)
starts regardless: it is *unguarded*, and extended to two servers it may
run on both.

IP resources guard themselves and groups run nothing; every other kind (the
application kit, and any kit to come) needs a guard.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ipkeeper.model.hierarchy import Hierarchy

GUARDING_KINDS = frozenset({"ip"})  # its own bring-up is refused where the address answers
INERT_KINDS = frozenset({"group"})  # runs nothing of its own

UNIQUE_CHECK = "unique-address check"
QUORUM = "quorum (majority)"
ONE_SERVER = "not needed: on one server only"
RUNS_NOTHING = "not needed: it runs nothing"
NOTHING = "nothing: may run on two servers if the comm paths are cut"


def needs_guard(kind: str) -> bool:
    """True for a kind that runs something and cannot guard itself (not ip, not group)."""
    return kind not in GUARDING_KINDS and kind not in INERT_KINDS


def guarded(graph: Hierarchy, kinds: Mapping[str, str], rid: str) -> bool:
    """True when `rid` needs no guard, or an IP resource is among its descendants (whose
    unique-address check then refuses the bring-up before `rid` starts)."""
    if not needs_guard(kinds.get(rid, "")):
        return True
    seen: set[str] = set()
    stack = list(graph.children.get(rid, ()))
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        if kinds.get(node) in GUARDING_KINDS:
            return True
        stack.extend(graph.children.get(node, ()))
    return False


def _edges(graph: Hierarchy) -> set[tuple[str, str]]:
    return {(p, c) for p, children in graph.children.items() for c in children}


@dataclass(frozen=True)
class Layout:
    """The resources as the guard rule sees them: each one's kind and the servers it is
    extended to (by resource id), and the dependency graph. Operations are checked by
    comparing the layout before them with the layout they would leave."""

    kinds: Mapping[str, str]
    servers: Mapping[str, frozenset[str]]
    graph: Hierarchy

    def exposed(self) -> dict[str, frozenset[str]]:
        """Every unguarded resource extended to two servers or more, with those servers:
        where it may run at once when the comm paths are cut (under QUORUM=none)."""
        return {
            rid: where
            for rid, where in self.servers.items()
            if len(where) > 1 and not guarded(self.graph, self.kinds, rid)
        }

    def extended(self, rids: Iterable[str], server: str) -> Layout:
        """This layout with `rids` extended to `server` as well."""
        servers = dict(self.servers)
        for rid in rids:
            servers[rid] = servers.get(rid, frozenset()) | {server}
        return Layout(self.kinds, servers, self.graph)

    def with_edges(
        self, add: Iterable[tuple[str, str]] = (), remove: Iterable[tuple[str, str]] = ()
    ) -> Layout:
        """This layout with dependencies (parent, child) added and removed."""
        edges = (_edges(self.graph) | set(add)) - set(remove)
        return Layout(self.kinds, self.servers, Hierarchy(edges, self.kinds))

    def with_resources(
        self, kinds: Mapping[str, str], servers: Mapping[str, Iterable[str]]
    ) -> Layout:
        """This layout with new resources (their kinds and servers) added."""
        all_kinds = {**self.kinds, **kinds}
        all_servers = {**self.servers, **{r: frozenset(s) for r, s in servers.items()}}
        return Layout(all_kinds, all_servers, Hierarchy(_edges(self.graph), all_kinds))


def newly_exposed(before: Layout, after: Layout) -> dict[str, frozenset[str]]:
    """The resources `after` leaves unguarded on two servers or more where `before` did
    not (on some server at least), each with every server it would then be on. A
    hierarchy already unguarded stays as it is; it only may not spread."""
    was = before.exposed()
    return {
        rid: where for rid, where in after.exposed().items() if where - was.get(rid, frozenset())
    }


@dataclass(frozen=True)
class GuardPolicy:
    """The tunables the guard of a hierarchy depends on, on this server."""

    quorum: str = "none"  # QUORUM
    unique_check: bool = True  # not NOIPUNIQUE
    allow: bool = False  # UNGUARDED_APPS=allow


@dataclass(frozen=True)
class HierarchyGuard:
    """What guards one hierarchy, as status says it."""

    guarded: bool
    guard: str  # one of UNIQUE_CHECK, QUORUM, ONE_SERVER, RUNS_NOTHING, NOTHING (...)
    unguarded: tuple[str, ...] = ()  # members that may run on two servers (resource ids)
    noipunique: bool = False  # unguarded because NOIPUNIQUE=1 turns the check off


def guard_of(layout: Layout, members: Iterable[str], policy: GuardPolicy) -> HierarchyGuard:
    """What keeps the hierarchy of `members` from running on two servers at once when
    the comm paths are cut, under `policy`."""
    ids = sorted(members)
    if not any(len(layout.servers.get(rid, ())) > 1 for rid in ids):
        return HierarchyGuard(True, ONE_SERVER, ())
    if policy.quorum == "majority":
        return HierarchyGuard(True, QUORUM, ())
    exposed = tuple(
        r
        for r in ids
        if len(layout.servers.get(r, ())) > 1 and not guarded(layout.graph, layout.kinds, r)
    )
    if exposed:
        why = (
            "UNGUARDED_APPS=allow"
            if policy.allow
            else "extended before UNGUARDED_APPS=refuse, or where it was allowed"
        )
        return HierarchyGuard(False, f"{NOTHING} ({why})", exposed)
    if not any(layout.kinds.get(r) in GUARDING_KINDS for r in ids):
        return HierarchyGuard(True, RUNS_NOTHING, ())
    if not policy.unique_check:
        spread = tuple(r for r in ids if len(layout.servers.get(r, ())) > 1)
        return HierarchyGuard(False, f"{NOTHING} (NOIPUNIQUE=1)", spread, noipunique=True)
    return HierarchyGuard(True, UNIQUE_CHECK, ())
