"""Applications that nothing guards against running on two servers (model/guard.py's rule),
applied to the operations that could make one and told in status.

Under QUORUM=none, with UNGUARDED_APPS=refuse (the default), an operation that
would leave a resource unguarded on two servers or more where it was not
before is refused before anything changes, naming the resource, the servers
and the ways out: extend, undepend, depend and apply ask `refuse_exposure`
with the layout they would leave. (A dependency added can only put an IP
resource below something, and a delete takes what depends on it along, so
neither can expose anything today; depend still asks, the rule being the
rule's business.) With UNGUARDED_APPS=allow the operation passes with a
warning. What was extended before this check existed is left as it is,
reported once at start-up (`warn_at_start`) and in status; it may not spread
to another server.

The tunables of the server that carries the operation out decide: set
QUORUM and UNGUARDED_APPS alike on every server.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ipkeeper.engine.core import Engine
from ipkeeper.engine.errors import conflict
from ipkeeper.model.guard import GuardPolicy, HierarchyGuard, Layout, guard_of, newly_exposed

WAYS_OUT = "use QUORUM=majority with a witness, or set UNGUARDED_APPS=allow"


def layout(engine: Engine) -> Layout:
    """The resources known here as the guard rule sees them."""
    records = engine.repo.resources()
    return Layout(
        {r.id: r.kind for r in records},
        {r.id: frozenset(i.server for i in r.instances) for r in records},
        engine.graph(),
    )


def policy(engine: Engine) -> GuardPolicy:
    """QUORUM, NOIPUNIQUE and UNGUARDED_APPS in force on this server."""
    return GuardPolicy(
        str(engine.tunables.get("QUORUM")),
        not engine.tunables.get("NOIPUNIQUE"),
        engine.tunables.get("UNGUARDED_APPS") == "allow",
    )


def servers_text(servers: Iterable[str]) -> str:
    """'s1 and s2', 's1, s2 and s3'."""
    names = sorted(servers)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def refuse_exposure(
    engine: Engine,
    field: str,
    after: Layout,
    first_way: str = "make it depend on an IP resource first",
    before: Layout | None = None,
    names: dict[str, str] | None = None,
) -> list[str]:
    """Refuse (OpError naming `field`, where "{tag}" stands for the resource's tag) an
    operation that would leave `after`: a resource unguarded on two servers or more
    where it was not; under UNGUARDED_APPS=allow, the warnings to report instead.
    Nothing under QUORUM=majority. `names`: tags of resources not stored yet (apply's)."""
    rules = policy(engine)
    if rules.quorum != "none":
        return []
    exposed = newly_exposed(before or layout(engine), after)
    if not exposed:
        return []

    def tag(rid: str) -> str:
        return (names or {}).get(rid) or engine.tag(rid)

    if rules.allow:
        return [
            f"{tag(rid)} is guarded by nothing: with QUORUM=none it may run on "
            f"{servers_text(where)} at once when the comm paths are cut (UNGUARDED_APPS=allow)"
            for rid, where in sorted(exposed.items(), key=lambda kv: tag(kv[0]))
        ]
    rid = min(exposed, key=tag)
    more = f" (and {len(exposed) - 1} more)" if len(exposed) > 1 else ""
    raise conflict(
        field.replace("{tag}", tag(rid)),
        f"{tag(rid)}{more} has no IP resource below it; with QUORUM=none nothing would stop it "
        f"running on {servers_text(exposed[rid])} at once when the comm paths are cut "
        f"({first_way}, {WAYS_OUT})",
    )


def refuse_applied(
    engine: Engine,
    new: dict[str, tuple[str, set[str]]],
    extend: dict[str, list[str]],
    depend: list[tuple[str, str]],
) -> list[str]:
    """`refuse_exposure` for a document apply would apply: `new` resources (tag: kind and
    servers), tags extended (by server) and dependencies added (parent tag, child tag)."""

    def rid(tag: str) -> str:
        rec = engine.repo.resource_by_tag(tag)
        return rec.id if rec is not None else f"new:{tag}"

    after = layout(engine).with_resources(
        {rid(t): kind for t, (kind, _) in new.items()},
        {rid(t): servers for t, (_, servers) in new.items()},
    )
    for server, tags in extend.items():
        after = after.extended([rid(t) for t in tags], server)
    after = after.with_edges(add=[(rid(p), rid(c)) for p, c in depend])
    return refuse_exposure(
        engine,
        "{tag}.children",
        after,
        first_way="list an IP resource in its children",
        names={f"new:{t}": t for t in new},
    )


@dataclass(frozen=True)
class Guarded:
    """One hierarchy and what guards it."""

    hid: str
    members: frozenset[str]
    servers: frozenset[str]
    guard: HierarchyGuard


def _guards(engine: Engine) -> list[Guarded]:
    current = layout(engine)
    rules = policy(engine)
    found = []
    for members in engine.graph().components():
        hid = engine.view.hierarchy_of(min(members)) or min(members)
        servers = frozenset().union(*(current.servers.get(r, frozenset()) for r in members))
        found.append(Guarded(hid, frozenset(members), servers, guard_of(current, members, rules)))
    return found


def hierarchies(engine: Engine) -> list[dict[str, Any]]:
    """Every hierarchy with what guards it, for status: its anchor's tag, how many
    resources, the servers it is extended to, the guard, and the resources unguarded."""
    listed = [
        {
            "tag": engine.tag(g.hid),
            "resources": len(g.members),
            "servers": sorted(g.servers),
            "guarded": g.guard.guarded,
            "guard": g.guard.guard,
            "unguarded": sorted(engine.tag(r) for r in g.guard.unguarded),
        }
        for g in _guards(engine)
    ]
    return sorted(listed, key=lambda h: h["tag"])


def quorum_note(note: str, listed: list[dict[str, Any]]) -> str:
    """The quorum's note, true about the hierarchies nothing guards: it names them."""
    bare = [h["tag"] for h in listed if not h["guarded"]]
    if not bare:
        return note
    count = f"{len(bare)} hierarch{'y is' if len(bare) == 1 else 'ies are'}"
    shown = ", ".join(bare[:5]) + (", ..." if len(bare) > 5 else "")
    told = (
        f"{count} guarded by nothing and may run on two servers if the comm paths are cut: {shown}"
    )
    return f"{note}; {told}" if note else told


def warn_at_start(engine: Engine) -> int:
    """At start-up: one warning event per hierarchy extended here with an application
    that nothing guards (extended before UNGUARDED_APPS existed, or under allow);
    nothing is taken down. The number of warnings."""
    warned = 0
    for g in _guards(engine):
        # NOIPUNIQUE=1 is a choice for every VIP, said by status: no event per hierarchy.
        if g.guard.guarded or g.guard.noipunique or engine.server not in g.servers:
            continue
        names = ", ".join(sorted(engine.tag(r) for r in g.guard.unguarded))
        why = f"with QUORUM=none and no IP resource below it, {names} may"
        way = "make it depend on an IP resource, or use QUORUM=majority with a witness"
        engine.events.add(
            "unguarded",
            f"guarded by nothing on {servers_text(g.servers)}: {why} run on two servers at once "
            f"if the comm paths are cut; nothing is taken down ({way})",
            tag=engine.tag(g.hid),
        )
        warned += 1
    return warned
