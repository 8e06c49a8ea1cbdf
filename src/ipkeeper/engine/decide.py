"""Pure decisions: what the engine should do, and the one-line reason why.

No I/O, no clock, no globals: every input is an argument (the frozen view,
the time, the policy), so priorities, recovery budgets, fencing, quorum
release, back-off, switchback and start-up reconciliation are plain unit
tests with an injected clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ipkeeper.config.tunables import Tunables
from ipkeeper.model.states import KitResult, Outcome, ResourceState
from ipkeeper.model.view import ClusterView, HierarchyId, HierarchyView


class Action(StrEnum):
    """What to do next about a resource or hierarchy."""

    NOTHING = "nothing"
    RECOVER = "recover"  # local recovery on this server (R10)
    FAIL_OVER = "fail-over"  # move the hierarchy to `target` (R22)
    STOP = "stop"  # take the hierarchy out of service as OSF
    ADOPT = "adopt"  # active and recorded in service: keep it, monitor it
    RESTORE = "restore"  # bring (back) in service here
    REMOVE = "remove"  # take out of service here
    FINISH_CREATE = "finish-create"
    FINISH_DELETE = "finish-delete"
    STAND_DOWN = "stand-down"  # another server holds it: record OSU here, touch nothing
    WAIT = "wait"  # something should happen, but not before `wait_until`
    SWITCH_BACK = "switch-back"  # move it to `target`, a better server that rejoined (R23)
    ANNOUNCE = "announce"  # a split brain ended in this server's favour: announce it again
    KEEP = "keep"  # nobody answers on the subnet from any server: keep it here, unprotected


@dataclass(frozen=True)
class Decision:
    """An action, its one-line reason, the server it concerns if another, and for
    a decision that must wait, the monotonic time until which it waits."""

    action: Action
    reason: str
    target: str | None = None
    wait_until: float | None = None


def on_check_failure(result: KitResult, recoveries_in_window: int, budget: int) -> Decision:
    """After a failed quick_check: recover locally while the budget lasts (R10)."""
    failed = f"quick_check failed ({result.reason})"
    if result.outcome is Outcome.FAILED_CONFIG:
        return Decision(Action.STOP, f"{failed}; not recoverable as configured")
    if recoveries_in_window >= budget:
        return Decision(
            Action.FAIL_OVER,
            f"{failed}; local recovery budget spent ({recoveries_in_window}/{budget})",
        )
    return Decision(Action.RECOVER, f"{failed}; local recovery {recoveries_in_window + 1}/{budget}")


def failover_target(
    priorities: dict[str, int],
    alive: set[str],
    exclude: set[str] = frozenset(),  # type: ignore[assignment]
) -> str | None:
    """The live server with the best (lowest) priority, not in `exclude` (R22)."""
    candidates = [(p, s) for s, p in priorities.items() if s in alive and s not in exclude]
    return min(candidates)[1] if candidates else None


def on_local_failure(
    why: str,
    priorities: dict[str, int],
    alive: set[str],
    here: str,
    may_take_over: bool = True,
    failed: set[str] | frozenset[str] = frozenset(),
) -> Decision:
    """When a hierarchy cannot be kept here: fail over to the next priority, or stop.

    Servers where it failed before come last, as in `plan`, so that this
    server and the others pick the same successor.
    """
    target = failover_target(priorities, alive, exclude={here} | set(failed)) or failover_target(
        priorities, alive, exclude={here}
    )
    if target is None:
        return Decision(Action.STOP, f"{why}; no other live server can take it over")
    if not may_take_over:
        return Decision(Action.STOP, f"{why}; no quorum, so no failover")
    return Decision(
        Action.FAIL_OVER, f"{why}; failing over to {target} (priority {priorities[target]})", target
    )


def reconcile(
    state: ResourceState | None, pending: str | None, active: bool, learnt: bool = False
) -> Decision:
    """At start-up: what the store says against what the system shows.

    An interrupted action is finished; an instance recorded in service but not
    active is restored; one active but recorded out of service is removed,
    unless the record was only `learnt` from a peer's definitions (this
    server's own store was lost and rebuilt): then nothing here ever decided to
    take it down, and it is adopted (where another server holds it, the caller
    defers to that holder as always). A failure recorded before the restart
    (OSF) is forgotten: a restart is when an administrator has repaired a
    server, so it stands by again, eligible for takeover and switchback (if
    the fault is still there, its first check says so).
    """
    seen = "active" if active else "not active"
    if pending == "create":
        return Decision(Action.FINISH_CREATE, f"creation was interrupted ({seen}): finishing it")
    if pending == "delete":
        return Decision(Action.FINISH_DELETE, f"deletion was interrupted ({seen}): finishing it")
    if pending == "restore":
        return Decision(Action.RESTORE, f"bring-up was interrupted ({seen}): bringing it up")
    if pending == "remove":
        return Decision(Action.REMOVE, f"take-down was interrupted ({seen}): taking it down")
    recorded_in = state is not None and state.in_service
    if recorded_in and active:
        return Decision(Action.ADOPT, "recorded in service and active: adopted")
    if recorded_in:
        return Decision(Action.RESTORE, "recorded in service but not active: bringing it up")
    if state is ResourceState.OSF and not active:
        return Decision(
            Action.STAND_DOWN,
            "out of service after a failure before this restart: standing by again "
            "(eligible for takeover and automatic switchback)",
        )
    if active and learnt:
        return Decision(
            Action.ADOPT,
            "active here and known only from a peer's definitions (this server's store was "
            "rebuilt): adopted",
        )
    if active:
        return Decision(Action.REMOVE, "recorded out of service but active: taking it down")
    return Decision(Action.NOTHING, "out of service, as recorded")


def plan(
    h: HierarchyView,
    alive: set[str],
    here: str,
    may_take_over: bool,
    unknown: frozenset[str] = frozenset(),
) -> Decision:
    """What this server should do about one hierarchy, given who holds it (R22, R32).

    - Running on more than one live server (split brain): all but the best
      priority give it up. Only servers really running it count: one still
      bringing it up may yet fail.
    - Held (running or coming up) by a live server: nothing.
    - Held by nobody alive, last held by a server that died, or given up by a
      server after a failure it could not repair (`abandoned`): once every
      live server has reported its states, the live server with the best
      priority where it has not failed takes it over, if it may. A server
      where it failed is used only when no other is left, and a server never
      takes back what it gave up itself.
    - Held by nobody alive, with some server it is extended to dead and never
      heard from since this server started (`unknown`: both lost power and
      only this one came back, or this daemon restarted just after that
      server died): what that server held is unknown, so a guarded hierarchy
      (`guarded`: each application has an IP resource below it) is taken over
      as if that server had died holding it (the unique-address check refuses
      if the address still answers), unless an administrator took it out of
      service. One that is not guarded is left alone.
    """
    priorities = h.priorities
    running, holders = h.running, h.holders
    if len(running) > 1 and here in running:
        best = min(running, key=lambda s: (priorities.get(s, 1000), s))
        if best != here:
            return Decision(
                Action.REMOVE,
                f"also in service on {best}, which has a better priority: giving it up",
                best,
            )
        return Decision(Action.NOTHING, "in service here and elsewhere; the others give it up")
    if holders:
        return Decision(Action.NOTHING, f"in service on {', '.join(sorted(holders))}")
    lost = _why_lost(h, unknown)
    if isinstance(lost, Decision):
        return lost
    why, given_up_by = lost
    unheard = h.unheard(here)
    if unheard:
        return Decision(Action.NOTHING, f"waiting to hear from {', '.join(sorted(unheard))}")
    fallback = failover_target(priorities, alive, exclude=set(given_up_by))
    target = failover_target(priorities, alive, exclude=set(h.failed)) or fallback
    if target is None:
        return Decision(Action.NOTHING, f"{why} and no live server can take it over")
    if target != here:
        return Decision(Action.NOTHING, f"{why}; {target} takes it over", target)
    if not may_take_over:
        return Decision(Action.NOTHING, f"{why}, but without quorum this server takes nothing over")
    return Decision(Action.RESTORE, f"{why}; taking it over (priority {priorities[here]})", here)


def _why_lost(h: HierarchyView, unknown: frozenset[str]) -> tuple[str, frozenset[str]] | Decision:
    """Why nobody alive holds a hierarchy that someone should: (the reason, the servers
    that gave it up themselves), or the decision to leave it alone (see `plan`)."""
    dead, abandoned = h.dead_holders, h.abandoned
    if dead:
        return f"{', '.join(sorted(dead))} died holding it", frozenset()
    if abandoned:
        return f"{', '.join(sorted(abandoned))} gave it up after a failure", abandoned
    if not unknown:
        return Decision(Action.NOTHING, "out of service")
    if h.withdrawn:
        return Decision(Action.NOTHING, "out of service (an administrator took it out)")
    names = ", ".join(sorted(unknown))
    if not h.guarded:
        return Decision(
            Action.NOTHING,
            f"{names} not heard from since this server started: whether it holds this "
            "hierarchy is unknown, and with no IP resource below its applications nothing "
            "can tell",
        )
    return f"{names} not heard from since this server started, and nobody holds it", frozenset()


@dataclass(frozen=True)
class Policy:
    """The tunables decisions depend on, read once per pass."""

    quorum: str = "none"
    quorum_release: float = 2.0
    quorum_grace: float = 1.0
    retry_first: float = 0.5
    retry_max: float = 10.0
    switchback_delay: float = 0.0

    @classmethod
    def from_tunables(cls, tunables: Tunables) -> Policy:
        """The policy in force now."""
        return cls(
            tunables.get("QUORUM"),
            tunables.get("QUORUM_RELEASE"),
            tunables.get("QUORUM_GRACE"),
            switchback_delay=tunables.get("SWITCHBACK_DELAY"),
        )


def decide(view: ClusterView, hid: HierarchyId, now: float, policy: Policy) -> Decision:
    """What this server does about hierarchy `hid` at time `now` (monotonic seconds).

    `plan` says who should hold it; time decides when:
    - in a minority (QUORUM=majority), what is held here is given up once
      QUORUM_RELEASE has passed since quorum was lost (R32), and nothing is
      taken over;
    - a takeover from a dead holder under QUORUM=majority waits until
      QUORUM_RELEASE + QUORUM_GRACE after its death, the time a merely cut-off
      holder needs to give it up (R32);
    - after a failed takeover, the next try waits 0.5 s, 1 s, 2 s ... up to
      10 s (the address may still answer somewhere);
    - with automatic switchback, a hierarchy held here moves to a better
      server that (re)joined after this one took it, once that server has
      been up SWITCHBACK_DELAY (R23; a server that flaps never gets it back);
    - once a split brain ends with this server the only one running it, it
      announces the hierarchy's addresses again (the loser removed them first),
      or neighbours keep the loser's MAC.
    A decision that must wait says until when (`wait_until`).
    """
    h = view.hierarchies[hid]
    me = view.me
    here = h.places.get(me)
    quorum = view.quorum
    if not quorum.has_quorum and here is not None and here.holding:
        since = quorum.minority_since if quorum.minority_since is not None else now
        release_at = since + policy.quorum_release
        if now >= release_at:
            return Decision(
                Action.REMOVE, f"no quorum for {policy.quorum_release:g}s: giving it up (R32)"
            )
        return Decision(
            Action.WAIT,
            f"in a minority: giving it up in {release_at - now:.1f}s unless quorum returns",
            wait_until=release_at,
        )
    if h.dual and h.running == {me}:
        others = ", ".join(sorted(s for s, p in h.places.items() if s != me and p.alive)) or "-"
        return Decision(
            Action.ANNOUNCE,
            f"no longer in service elsewhere (a split brain ended; {others} gave it up): "
            "announcing it from here so that neighbours' caches follow",
        )
    unknown = frozenset(
        s
        for s, place in h.places.items()
        if s != me
        and not place.alive
        and (peer := view.peers.get(s)) is not None
        and peer.joined_at is None
        and peer.died_at is None
    )
    decision = plan(h, view.alive(), me, quorum.has_quorum, unknown)
    if decision.action is Action.RESTORE:
        return _when_to_take_over(view, h, now, policy, decision, unknown)
    if decision.action is Action.NOTHING and here is not None and here.running:
        return _switchback(view, h, decision, now, policy)
    return decision


def disagreeing(view: ClusterView, gone: frozenset[str]) -> tuple[frozenset[str], int]:
    """Under QUORUM=majority, whether a majority agrees that the servers `gone` are
    gone: (the live voters that still see one of them alive or have not said what
    they see, the votes that agree, this server's included).

    Counting the votes this server sees is not enough: in a partial partition (s1
    and s2 cut from each other, both reaching s3) s2 sees two of three votes and
    s1 dead, while s3 sees s1 alive, and s1 rightly keeps what it runs. A death
    counts only when the voters counted also say it happened, as corosync decides
    membership as one view (R32).
    """
    agree, against = 1, set()
    for name, peer in view.peers.items():
        if not peer.alive or name in gone:
            continue
        if peer.sees is not None and not (peer.sees & gone):
            agree += 1
        else:
            against.add(name)
    return frozenset(against), agree


def _when_to_take_over(
    view: ClusterView,
    h: HierarchyView,
    now: float,
    policy: Policy,
    decision: Decision,
    unknown: frozenset[str] = frozenset(),
) -> Decision:
    dead = h.dead_holders
    gone = dead | (unknown if not h.abandoned else frozenset())
    if gone and policy.quorum == "majority":
        against, agree = disagreeing(view, gone)
        if agree * 2 <= view.quorum.total:
            names = ", ".join(sorted(gone))
            return Decision(
                Action.WAIT,
                f"{names} gone as seen from here, but {', '.join(sorted(against))} "
                f"{'does' if len(against) == 1 else 'do'} not agree ({agree} of "
                f"{view.quorum.total} votes): taking nothing over until a majority agrees "
                "(QUORUM=majority; a partial partition)",
                wait_until=now + max(policy.quorum_grace, 0.5),
            )
    if dead and policy.quorum == "majority":
        since = max(
            (d if (p := view.peers.get(s)) and (d := p.died_at) is not None else view.started)
            for s in dead
        )
        fenced_until = since + policy.quorum_release + policy.quorum_grace
        if now < fenced_until:
            return Decision(
                Action.WAIT,
                f"{', '.join(sorted(dead))} died holding it; waiting {fenced_until - now:.1f}s "
                "before taking it over, so that a holder that is only cut off has given it up "
                "(QUORUM=majority)",
                wait_until=fenced_until,
            )
    attempt = view.attempts.get(h.id)
    if attempt is not None and attempt.tries:
        retry_at = attempt.last + min(
            policy.retry_first * 2 ** (attempt.tries - 1), policy.retry_max
        )
        if now < retry_at:
            return Decision(
                Action.WAIT,
                f"{decision.reason}: try {attempt.tries + 1} in {retry_at - now:.1f}s",
                wait_until=retry_at,
            )
    return decision


def _switchback(
    view: ClusterView, h: HierarchyView, decision: Decision, now: float, policy: Policy
) -> Decision:
    if h.switchback != "automatic":
        return decision
    me = view.me
    mine = h.priorities[me]
    better = []
    for server, place in h.places.items():
        peer = view.peers.get(server)
        if (
            peer is None
            or not place.alive
            or not place.reported
            or place.failed
            or place.priority >= mine
            or peer.joined_at is None
        ):
            continue
        if h.held_since is None or peer.joined_at > h.held_since:
            better.append(server)
    if not better:
        return decision
    best = min(better, key=lambda s: (h.priorities[s], s))
    joined = view.peers[best].joined_at
    assert joined is not None
    stable_at = joined + policy.switchback_delay
    if now < stable_at:
        return Decision(
            Action.WAIT,
            f"waiting {stable_at - now:.1f}s more for {best} to be stable before switching "
            f"back (SWITCHBACK_DELAY={policy.switchback_delay:g}s)",
            best,
            wait_until=stable_at,
        )
    return Decision(
        Action.SWITCH_BACK,
        f"automatic switchback to {best} (better priority, up for {now - joined:.1f}s)",
        best,
    )


def defer_to_holders(decision: Decision, holders: set[str], active: bool = False) -> Decision:
    """At start-up, when other live servers hold the hierarchy (they took it over
    while this one was away), this server must not adopt or restore it; what
    is still active here is taken down."""
    if not holders:
        return decision
    who = ", ".join(sorted(holders))
    if decision.action is Action.ADOPT or (
        active and decision.action in (Action.RESTORE, Action.FINISH_CREATE)
    ):
        return Decision(Action.REMOVE, f"{who} holds it now: taking down what is left here")
    if decision.action in (Action.RESTORE, Action.FINISH_CREATE):
        return Decision(Action.STAND_DOWN, f"{who} holds it now: not brought up here")
    return decision


# -- nobody answers on the subnet (issue 11, item 8) --------------------------------------


class Reach(StrEnum):
    """What a server found when it tested a subnet's reachability from its own side."""

    REACHED = "reached"  # a responder answered (or its check would not ping at all)
    NONE = "none"  # every ping left and nobody answered
    UNKNOWN = "unknown"  # it could not tell: no address there, link down, not asked, older


def no_responder(result: KitResult | None) -> bool:
    """True when a check (or the check after a recovery's bring-up) failed only because
    nobody on the subnet answered: the address is there, the link is up, the pings
    left. Moving helps only if another server finds a responder."""
    return (
        result is not None
        and not result.ok
        and result.step == "reachability"
        and bool(result.details.get("no_responder"))
    )


def reach_of(result: KitResult) -> Reach:
    """A server's test of a subnet (kits/ip/check.py `reach_from_here`) as a Reach."""
    if result.ok:
        return Reach.REACHED
    return Reach.NONE if no_responder(result) else Reach.UNKNOWN


def on_unreachable(
    why: str,
    subnet: str,
    policy: str,
    here: str,
    answers: dict[str, tuple[Reach, str]],
    priorities: dict[str, int],
    failed: set[str] | frozenset[str] = frozenset(),
) -> Decision:
    """A check failed only because nobody on `subnet` answers from `here`, and local
    recovery did not repair it: keep the VIP in service here, or move it.

    With NO_RESPONDER=failover (`policy`), it is any failure: FAIL_OVER without a
    target (the usual hand-over picks one). With `keep`, `answers` holds what each
    other live server found testing the subnet from its own address: the hierarchy
    moves only to a server that reached a responder (the best priority of those,
    servers where it failed before last), and otherwise stays here (KEEP): moving
    cannot help when every server fails the same test, and taking the VIP down
    would turn a router's ping problem into an outage. A server that could not tell
    is not moved to either (the error is toward one holder), and the reason says so.
    """
    if policy != "keep":
        return Decision(Action.FAIL_OVER, f"{why}; NO_RESPONDER={policy}: failing over")
    reached = {s for s, (r, _) in answers.items() if r is Reach.REACHED and s != here}
    target = failover_target(priorities, reached, exclude={here} | set(failed))
    target = target or failover_target(priorities, reached, exclude={here})
    if target is not None:
        return Decision(
            Action.FAIL_OVER,
            f"{why}; no responder on {subnet} from {here}, but {target} reaches one: "
            f"failing over to {target} (priority {priorities[target]})",
            target,
        )
    silent = sorted({here} | {s for s, (r, _) in answers.items() if r is Reach.NONE})
    unsure = sorted(s for s, (r, _) in answers.items() if r is Reach.UNKNOWN)
    if not unsure:
        where = f"any server ({', '.join(silent)})"
    else:
        told = "; ".join(f"{s} cannot tell: {answers[s][1]}" for s in unsure)
        where = f"{', '.join(silent)} ({told})"
    return Decision(
        Action.KEEP, f"kept in service unprotected: no responder on {subnet} from {where}"
    )
