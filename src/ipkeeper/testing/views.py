"""Cluster views made by hand, for tests of decisions (`decide(view, hid, now, policy)`).

    view = scene("s2", {"s1": 1, "s2": 10}, dead={"s1"}, died_at={"s1": 100.0})
    decide(view, HID, now=100.5, policy=Policy(quorum="majority"))

Every server named in `priorities` can run the hierarchy; `alive` defaults to
all of them and the witnesses but the dead holders.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ipkeeper.model.view import (
    Attempt,
    ClusterView,
    HierarchyView,
    PeerView,
    Place,
    QuorumView,
)

HID = "r1"


def scene(
    me: str,
    priorities: Mapping[str, int],
    *,
    holders: Iterable[str] = (),
    running: Iterable[str] | None = None,
    dead: Iterable[str] = (),
    failed: Iterable[str] = (),
    abandoned: Iterable[str] = (),
    alive: Iterable[str] | None = None,
    unheard: Iterable[str] = (),
    witnesses: Iterable[str] = (),
    switchback: str = "intelligent",
    quorum: str = "none",
    minority_since: float | None = None,
    died_at: Mapping[str, float] | None = None,
    joined_at: Mapping[str, float] | None = None,
    held_since: float | None = None,
    dual: bool = False,
    withdrawn: bool = False,
    attempt: Attempt | None = None,
    started: float = 0.0,
    sees: Mapping[str, Iterable[str] | None] | None = None,
    guarded: bool = True,
) -> ClusterView:
    """A view of one hierarchy (id `HID`) on the servers of `priorities`. Each live
    peer sees the same servers alive as this one unless `sees` says otherwise."""
    dead_set = set(dead)
    everyone = set(priorities) | set(witnesses)
    alive_set = set(alive) if alive is not None else everyone - dead_set
    alive_set.add(me)
    holding = set(holders) | dead_set
    run = set(running) if running is not None else holding
    places = {
        server: Place(
            priority,
            server in alive_set,
            server == me or server not in set(unheard),
            server in holding,
            server in run,
            server in set(failed),
            server in set(abandoned),
        )
        for server, priority in priorities.items()
    }
    hierarchy = HierarchyView(
        HID, frozenset({HID}), "ip-test", switchback, guarded, places, me in priorities, held_since,
        dual, withdrawn,
    )  # fmt: skip
    names = (set(priorities) | set(witnesses)) - {me}
    peers = {
        name: PeerView(
            name,
            name in alive_set,
            name in set(witnesses),
            name not in set(unheard),
            (died_at or {}).get(name),
            (joined_at or {}).get(name),
            _sees(name, alive_set, sees),
        )
        for name in names
    }
    seen = 1 + sum(1 for p in peers.values() if p.alive)
    return ClusterView(
        me,
        started,
        peers,
        QuorumView(quorum, seen, 1 + len(peers), minority_since),
        {HID: hierarchy},
        {HID: attempt} if attempt else {},
    )


def _sees(
    name: str, alive: set[str], sees: Mapping[str, Iterable[str] | None] | None
) -> frozenset[str] | None:
    if sees is not None and name in sees:
        given = sees[name]
        return frozenset(given) if given is not None else None
    return frozenset(alive - {name})
