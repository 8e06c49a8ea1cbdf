"""The frozen snapshot of the cluster that decisions read (pure data).

`engine/clusterview.py` builds it from the store, the peer table and what
this server is doing; `engine/decide.py` reads it, with the time and the
policy as the only other inputs. Nothing here changes once built.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

HierarchyId = str  # the id of the hierarchy's anchor: its first root resource


@dataclass(frozen=True)
class Place:
    """One server's relation to one hierarchy, as known here."""

    priority: int  # of the hierarchy's anchor on that server
    alive: bool
    reported: bool  # its states are known for its current life (always True for this server)
    holding: bool  # a member in service there, or coming up
    running: bool  # a member in service there (not just coming up)
    failed: bool  # a member OSF there
    handover: bool  # it gave the hierarchy up after a failure, for another to take


@dataclass(frozen=True)
class HierarchyView:
    """One hierarchy: its members, and every server where all of it is extended."""

    id: HierarchyId
    members: frozenset[str]
    tag: str  # the anchor's tag on this server
    switchback: str  # the anchor's: intelligent or automatic (R23)
    # Every member that runs something has an IP resource below it (model/guard.py), so
    # the unique-address check refuses its bring-up where the address still answers.
    guarded: bool
    places: Mapping[str, Place]
    extended_here: bool  # some member has an instance on this server
    held_since: float | None = None  # monotonic time since when this server holds it
    dual: bool = False  # seen running here and elsewhere at once, not announced since
    withdrawn: bool = False  # an administrator took it out of service; nothing brings it back
    addressed: bool = False  # has an IP resource: a bring-up of the whole stops at its check

    @property
    def priorities(self) -> dict[str, int]:
        """Servers that can run it, with their priority (1 is the best)."""
        return {s: p.priority for s, p in self.places.items()}

    @property
    def holders(self) -> frozenset[str]:
        """Live servers with a member in service or coming up."""
        return frozenset(s for s, p in self.places.items() if p.alive and p.holding)

    @property
    def running(self) -> frozenset[str]:
        """Live servers with a member actually in service."""
        return frozenset(s for s, p in self.places.items() if p.alive and p.running)

    @property
    def dead_holders(self) -> frozenset[str]:
        """Servers not alive whose last report had it in service (or coming up)."""
        return frozenset(s for s, p in self.places.items() if not p.alive and p.holding)

    @property
    def failed(self) -> frozenset[str]:
        """Servers where a member is OSF."""
        return frozenset(s for s, p in self.places.items() if p.failed)

    @property
    def abandoned(self) -> frozenset[str]:
        """Servers that gave it up after a failure they could not repair."""
        return frozenset(s for s, p in self.places.items() if p.handover)

    def unheard(self, me: str) -> frozenset[str]:
        """Live servers that have not reported their states since they came (back)."""
        return frozenset(
            s for s, p in self.places.items() if s != me and p.alive and not p.reported
        )


@dataclass(frozen=True)
class PeerView:
    """What is known of one peer when the view was built."""

    name: str
    alive: bool
    witness: bool
    reported: bool
    died_at: float | None
    joined_at: float | None
    sees: frozenset[str] | None = None  # the servers it last said were alive (None: unknown)


@dataclass(frozen=True)
class QuorumView:
    """Votes seen and the mode (R32)."""

    mode: str  # none or majority
    seen: int
    total: int
    minority_since: float | None = None  # when this server last lost quorum

    @property
    def has_quorum(self) -> bool:
        """With QUORUM=majority, True only when more than half the votes are seen."""
        return self.mode != "majority" or self.seen * 2 > self.total


@dataclass(frozen=True)
class Attempt:
    """Takeover tries of one hierarchy since the cluster last changed (for back-off)."""

    last: float
    tries: int


@dataclass(frozen=True)
class ClusterView:
    """Everything a decision reads."""

    me: str
    started: float  # monotonic time this daemon started
    peers: Mapping[str, PeerView]
    quorum: QuorumView
    hierarchies: Mapping[HierarchyId, HierarchyView]
    attempts: Mapping[HierarchyId, Attempt] = field(default_factory=dict)

    def alive(self) -> set[str]:
        """Servers alive, this one included (witnesses excluded)."""
        return {self.me} | {n for n, p in self.peers.items() if p.alive and not p.witness}
