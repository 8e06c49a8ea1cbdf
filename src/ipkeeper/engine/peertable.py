"""What this server knows about each peer: one owner for every fact (R22, R25, R32).

Liveness (from the heartbeats), the states a peer last reported (from its
state reports), when it died and when it rejoined, and whether what it
reported is news of its current life or history: all of it lives here, and
nowhere else. The cluster plane writes it (a coordination backend: the comm
paths today); the engine only reads it, through the frozen view it builds
(engine/clusterview.py).

Rules kept here:
- A peer that is not alive holds what its last report said (its "dead
  holdings"), until another server runs the hierarchy or an administrator
  takes it out of service (`forget_holding`): a death long past must not
  bring a hierarchy back.
- A report counts only if it is newer than the last one from the same run of
  the peer's daemon (reports travel on every path; a slow one must not undo a
  newer one).
- A peer that becomes alive again holds nothing as far as decisions go until
  it reports; a report that arrived before its heartbeats proved it alive is
  already the news of its new life and is kept.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ipkeeper.model.states import ResourceState

log = logging.getLogger("ipkeeper.peers")


@dataclass(frozen=True)
class Reported:
    """One resource as a peer reported it."""

    state: ResourceState | None
    reason: str = ""
    pending: str | None = None
    busy: str | None = None
    handover: bool = False  # the peer gave it up after a failure, for another to take
    since: float | None = None  # Unix time it entered this state there

    @property
    def holding(self) -> bool:
        """In service there, or coming up."""
        in_service = self.state is not None and self.state.in_service
        return in_service or self.pending in ("restore", "create")

    @classmethod
    def parse(cls, data: Any) -> Reported | None:
        """From a report's JSON entry; None when it is not one."""
        if not isinstance(data, dict):
            return None
        raw = data.get("state")
        try:
            state = ResourceState(raw) if raw else None
        except ValueError:
            return None
        pending = data.get("pending")
        busy = data.get("busy")
        since = data.get("since")
        return cls(
            state,
            str(data.get("reason") or ""),
            pending if isinstance(pending, str) else None,
            busy if isinstance(busy, str) else None,
            bool(data.get("handover")),
            float(since)
            if isinstance(since, int | float) and not isinstance(since, bool)
            else None,
        )


@dataclass
class PeerRecord:
    """Everything known about one peer."""

    name: str
    witness: bool = False
    alive: bool = False
    changed_at: float = 0.0  # monotonic time of the last change of `alive`
    died_at: float | None = None  # when it was last judged dead
    joined_at: float | None = None  # when it last became alive and then reported
    reported: bool = False  # a report arrived since it last became alive (or before)
    ready: bool = False  # ... and that report said its states are true (reconciled)
    fresh: bool = False  # a report arrived since it was last judged dead or restarted
    stamp: tuple[str, int] | None = None  # (run, sequence) of the last report taken
    states: dict[str, Reported] = field(default_factory=dict)
    sees: frozenset[str] | None = None  # the servers it last said were alive (None: unknown)


Listener = Callable[[str, set[str] | None], None]  # peer, changed resource ids (None: all)


class PeerTable:
    """The peers of this server and what is known of each; see the module docstring."""

    def __init__(
        self,
        me: str,
        peers: Iterable[tuple[str, bool]] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.me = me
        self.clock = clock
        self.started = clock()
        self.peers: dict[str, PeerRecord] = {
            name: PeerRecord(name, witness) for name, witness in peers
        }
        self.listeners: list[Listener] = []

    def _tell(self, name: str, changed: set[str] | None) -> None:
        for listener in self.listeners:
            listener(name, changed)

    # -- reading -----------------------------------------------------------------

    def __contains__(self, name: object) -> bool:
        return name in self.peers

    def get(self, name: str) -> PeerRecord | None:
        """The record of a peer (not to be changed by the caller)."""
        return self.peers.get(name)

    def is_alive(self, name: str) -> bool:
        """True while the heartbeats say `name` is alive (this server always is)."""
        if name == self.me:
            return True
        rec = self.peers.get(name)
        return rec is not None and rec.alive

    def seen_alive(self) -> list[str]:
        """The peers (witnesses too) this server's heartbeats say are alive: its
        membership, sent with every state report so that peers can tell whether a
        death they see is agreed (QUORUM=majority)."""
        return sorted(n for n, r in self.peers.items() if r.alive)

    def alive(self) -> set[str]:
        """Servers alive now, this one included (witnesses excluded)."""
        return {self.me} | {n for n, r in self.peers.items() if r.alive and not r.witness}

    def votes(self) -> tuple[int, int]:
        """(votes seen, votes in all): one per server and witness, this one included (R32)."""
        return 1 + sum(1 for r in self.peers.values() if r.alive), 1 + len(self.peers)

    def has_quorum(self, mode: str) -> bool:
        """With `mode` "majority", True only when more than half the votes are seen (R32)."""
        if mode != "majority":
            return True
        seen, total = self.votes()
        return seen * 2 > total

    def has_reported(self, name: str) -> bool:
        """True once `name` has reported ready states in its current life."""
        rec = self.peers.get(name)
        return rec is not None and rec.reported and rec.ready

    def states_of(self, name: str) -> Mapping[str, Reported]:
        """The states `name` last reported (nothing while it is starting or unheard)."""
        rec = self.peers.get(name)
        return rec.states if rec is not None else {}

    # -- writing (the cluster plane) ------------------------------------------------

    def alive_changed(self, name: str, alive: bool) -> bool:
        """The heartbeats changed their verdict on `name`; True when that is a change."""
        rec = self.peers.get(name)
        if rec is None or rec.alive == alive:
            return False
        now = self.clock()
        rec.alive, rec.changed_at = alive, now
        if alive:
            if not rec.fresh:
                rec.states, rec.reported, rec.ready = {}, False, False
                rec.sees = None
            elif rec.ready:
                rec.joined_at = now
        else:
            rec.died_at, rec.joined_at = now, None
            rec.fresh = rec.reported = rec.ready = False
        self._tell(name, None)
        return True

    def restarted(self, name: str) -> None:
        """The peer's daemon started a new run without being judged dead in between."""
        rec = self.peers.get(name)
        if rec is None:
            return
        rec.fresh = rec.reported = rec.ready = False
        rec.states, rec.joined_at, rec.sees = {}, None, None
        self._tell(name, None)

    def report(
        self,
        name: str,
        run: str,
        sequence: int,
        ready: bool,
        states: Mapping[str, Any],
        sees: Iterable[str] | None = None,
    ) -> set[str] | None:
        """A state report from `name`, with the servers it sees alive (its membership);
        the resource ids whose entry changed, or None when the report was stale (older
        than one already taken from the same run)."""
        rec = self.peers.get(name)
        if rec is None:
            return None
        if rec.stamp is not None and rec.stamp[0] == run and sequence <= rec.stamp[1]:
            return None
        rec.stamp = (run, sequence)
        seen = frozenset(sees) if sees is not None else None
        if seen != rec.sees:
            rec.sees = seen
            self._tell(name, None)  # whether a death is agreed may have changed anywhere
        parsed = {
            rid: entry
            for rid, raw in states.items()
            if isinstance(rid, str) and (entry := Reported.parse(raw)) is not None
        }
        changed = {
            rid
            for rid in parsed.keys() | rec.states.keys()
            if parsed.get(rid) != rec.states.get(rid)
        }
        was_ready = rec.reported and rec.ready
        rec.states, rec.reported, rec.ready, rec.fresh = parsed, True, ready, True
        if rec.alive and ready and not was_ready:
            rec.joined_at = self.clock()
        if changed or not was_ready:
            self._tell(name, changed if was_ready else None)
        return changed

    def forget_holding(self, name: str, resource_ids: Iterable[str]) -> bool:
        """Take a peer that is not alive as holding, or handing over, none of these any more.

        Once another server has held the hierarchy, or an administrator has
        taken it out of service, what the dead server held (or gave up) when
        it died must not cause another takeover. True when anything changed.
        """
        rec = self.peers.get(name)
        if rec is None or rec.alive:
            return False
        changed: set[str] = set()
        for rid in set(resource_ids) & rec.states.keys():
            entry = rec.states[rid]
            if not entry.holding and not entry.handover:
                continue
            retired = replace(entry, pending=None, handover=False)
            if entry.holding:
                retired = replace(
                    retired, state=ResourceState.OSU, reason="held by another server since it died"
                )
            rec.states[rid] = retired
            changed.add(rid)
        if changed:
            self._tell(name, changed)
        return bool(changed)
