"""Pure decisions: what the engine should do, and the one-line reason why.

No I/O, no clock, no globals: every input is an argument, so priorities,
recovery budgets and start-up reconciliation are plain unit tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ipkeeper.model.states import KitResult, Outcome, ResourceState


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


@dataclass(frozen=True)
class Decision:
    """An action, its one-line reason, and the server it concerns, if another."""

    action: Action
    reason: str
    target: str | None = None


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


def reconcile(state: ResourceState | None, pending: str | None, active: bool) -> Decision:
    """At start-up: what the store says against what the system shows.

    An interrupted action is finished; an instance recorded in service but not
    active is restored; one active but recorded out of service is removed.
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
    if active:
        return Decision(Action.REMOVE, "recorded out of service but active: taking it down")
    return Decision(Action.NOTHING, "out of service, as recorded")


def plan(
    priorities: dict[str, int],
    holders: set[str] | frozenset[str],
    dead_holders: set[str] | frozenset[str],
    failed: set[str] | frozenset[str],
    alive: set[str],
    here: str,
    may_take_over: bool,
    abandoned: set[str] | frozenset[str] = frozenset(),
    running: set[str] | frozenset[str] | None = None,
    unheard: set[str] | frozenset[str] = frozenset(),
) -> Decision:
    """What this server should do about one hierarchy, given who holds it (R22, R32).

    - Running on more than one live server (split brain): all but the best
      priority give it up. Only servers really running it (`running`) count:
      one still bringing it up may yet fail.
    - Held (running or coming up) by a live server: nothing.
    - Held by nobody alive, last held by a server that died, or given up by a
      server after a failure it could not repair (`abandoned`): once every
      live server has reported its states (`unheard` is empty), the live
      server with the best priority where it has not failed takes it over,
      if it may. A server where it failed is used only when no other is left,
      and a server never takes back what it gave up itself.
    """
    running = holders if running is None else running
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
    if not dead_holders and not abandoned:
        return Decision(Action.NOTHING, "out of service")
    if unheard:
        return Decision(Action.NOTHING, f"waiting to hear from {', '.join(sorted(unheard))}")
    if dead_holders:
        why = f"{', '.join(sorted(dead_holders))} died holding it"
        fallback = failover_target(priorities, alive)
    else:
        why = f"{', '.join(sorted(abandoned))} gave it up after a failure"
        fallback = failover_target(priorities, alive, exclude=set(abandoned))
    target = failover_target(priorities, alive, exclude=set(failed)) or fallback
    if target is None:
        return Decision(Action.NOTHING, f"{why} and no live server can take it over")
    if target != here:
        return Decision(Action.NOTHING, f"{why}; {target} takes it over", target)
    if not may_take_over:
        return Decision(Action.NOTHING, f"{why}, but without quorum this server takes nothing over")
    return Decision(Action.RESTORE, f"{why}; taking it over (priority {priorities[here]})", here)


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
