"""Pure decisions: recovery budget, failover target, start-up reconciliation."""

from __future__ import annotations

import pytest

from ipkeeper.engine.decide import (
    Action,
    failover_target,
    on_check_failure,
    on_local_failure,
    plan,
    reconcile,
)
from ipkeeper.model.states import KitResult, Outcome, ResourceState

FAILED = KitResult(
    Outcome.FAILED_LOCAL, "address: 198.18.0.50 is not configured on eth0", step="address"
)


def test_recover_while_the_budget_lasts_then_fail_over() -> None:
    first = on_check_failure(FAILED, recoveries_in_window=0, budget=2)
    assert first.action is Action.RECOVER
    assert first.reason == (
        "quick_check failed (address: 198.18.0.50 is not configured on eth0); local recovery 1/2"
    )
    assert on_check_failure(FAILED, 1, 2).reason.endswith("local recovery 2/2")
    spent = on_check_failure(FAILED, 2, 2)
    assert spent.action is Action.FAIL_OVER and "budget spent (2/2)" in spent.reason
    assert on_check_failure(FAILED, 0, 0).action is Action.FAIL_OVER


def test_a_configuration_failure_never_fails_over() -> None:
    bad = KitResult(Outcome.FAILED_CONFIG, "interface eth9 does not exist")
    assert on_check_failure(bad, 0, 3).action is Action.STOP


def test_failover_goes_to_the_best_live_priority() -> None:
    prio = {"s1": 1, "s2": 10, "s3": 5}
    assert failover_target(prio, alive={"s1", "s2", "s3"}, exclude={"s1"}) == "s3"
    assert failover_target(prio, alive={"s1", "s2"}, exclude={"s1"}) == "s2"
    assert failover_target(prio, alive={"s1"}, exclude={"s1"}) is None


def test_local_failure_decisions() -> None:
    prio = {"s1": 1, "s2": 10}
    moved = on_local_failure("ip failed", prio, {"s1", "s2"}, "s1")
    assert moved.action is Action.FAIL_OVER and moved.target == "s2"
    assert moved.reason == "ip failed; failing over to s2 (priority 10)"
    alone = on_local_failure("ip failed", prio, {"s1"}, "s1")
    assert alone.action is Action.STOP and "no other live server" in alone.reason
    assert (
        on_local_failure("x", prio, {"s1", "s2"}, "s1", may_take_over=False).action is Action.STOP
    )


def test_local_failure_picks_the_successor_that_plan_picks() -> None:
    # s2 failed it before: s1's hand-over and s3's own plan both choose s3.
    prio = {"s1": 1, "s2": 10, "s3": 20}
    alive = {"s1", "s2", "s3"}
    handed = on_local_failure("ip failed", prio, alive, "s1", failed={"s1", "s2"})
    assert handed.target == "s3"
    planned = plan(prio, set(), set(), {"s1", "s2"}, alive, "s3", True, abandoned={"s1"})
    assert planned.action is Action.RESTORE and planned.target == "s3"
    # With no other choice left, a server where it failed before is still tried.
    assert on_local_failure("x", prio, {"s1", "s2"}, "s1", failed={"s2"}).target == "s2"


@pytest.mark.parametrize(
    ("state", "pending", "active", "action"),
    [
        (ResourceState.OSU, "create", False, Action.FINISH_CREATE),
        (ResourceState.ISP, "delete", True, Action.FINISH_DELETE),
        (ResourceState.OSU, "restore", False, Action.RESTORE),
        (ResourceState.ISP, "remove", True, Action.REMOVE),
        (ResourceState.ISP, None, True, Action.ADOPT),
        (ResourceState.ISU, None, True, Action.ADOPT),
        (ResourceState.ISP, None, False, Action.RESTORE),
        (ResourceState.OSU, None, True, Action.REMOVE),
        (ResourceState.OSF, None, True, Action.REMOVE),
        (ResourceState.OSU, None, False, Action.NOTHING),
    ],
)
def test_reconcile_table(
    state: ResourceState, pending: str | None, active: bool, action: Action
) -> None:
    decision = reconcile(state, pending, active)
    assert decision.action is action
    assert decision.reason


def test_plan_takes_over_only_on_the_best_live_server() -> None:
    from ipkeeper.engine.decide import plan

    prio = {"s1": 1, "s2": 10, "s3": 20}
    args = dict(holders=set(), dead_holders={"s1"}, failed=set(), alive={"s2", "s3"})
    assert plan(prio, here="s2", may_take_over=True, **args).action is Action.RESTORE
    waits = plan(prio, here="s3", may_take_over=True, **args)
    assert waits.action is Action.NOTHING and waits.target == "s2"
    failed = plan(prio, here="s3", may_take_over=True, **args | {"failed": {"s2"}})
    assert failed.action is Action.RESTORE
    # A server where it failed once is still used when no other is left.
    last = plan(prio, here="s2", may_take_over=True, **args | {"alive": {"s2"}, "failed": {"s2"}})
    assert last.action is Action.RESTORE
    assert plan(prio, here="s2", may_take_over=False, **args).action is Action.NOTHING


def test_plan_heals_a_split_brain_toward_the_better_priority() -> None:
    from ipkeeper.engine.decide import plan

    prio = {"s1": 1, "s2": 10}
    both = dict(
        holders={"s1", "s2"},
        dead_holders=set(),
        failed=set(),
        alive={"s1", "s2"},
        may_take_over=True,
    )
    give_up = plan(prio, here="s2", **both)
    assert give_up.action is Action.REMOVE and give_up.target == "s1"
    assert plan(prio, here="s1", **both).action is Action.NOTHING


def test_defer_to_holders_at_start_up() -> None:
    from ipkeeper.engine.decide import Decision, defer_to_holders

    adopt = Decision(Action.ADOPT, "recorded in service and active: adopted")
    assert defer_to_holders(adopt, {"s2"}).action is Action.REMOVE
    restore = Decision(Action.RESTORE, "x")
    assert defer_to_holders(restore, {"s2"}).action is Action.STAND_DOWN
    assert defer_to_holders(restore, {"s2"}, active=True).action is Action.REMOVE
    assert defer_to_holders(restore, set()) is restore


def test_a_hierarchy_given_up_after_a_failure_is_taken_by_the_next_server() -> None:
    from ipkeeper.engine.decide import plan

    prio = {"s1": 1, "s2": 10, "s3": 20}
    args = dict(
        holders=set(),
        dead_holders=set(),
        failed={"s1"},
        alive={"s1", "s2", "s3"},
        may_take_over=True,
    )
    taken = plan(prio, here="s2", abandoned={"s1"}, **args)
    assert taken.action is Action.RESTORE
    assert taken.reason == "s1 gave it up after a failure; taking it over (priority 10)"
    assert plan(prio, here="s3", abandoned={"s1"}, **args).action is Action.NOTHING
    assert plan(prio, here="s2", **args).action is Action.NOTHING  # merely out of service


def test_a_server_never_takes_back_what_it_gave_up_and_waits_for_silent_peers() -> None:
    from ipkeeper.engine.decide import plan

    prio = {"s1": 1, "s2": 10}
    gave_up = dict(
        holders=set(), dead_holders=set(), failed={"s1"}, may_take_over=True, abandoned={"s1"}
    )
    # s1 came back before hearing that s2 took over: it must not take its VIP back.
    assert plan(prio, alive={"s1"}, here="s1", **gave_up).action is Action.NOTHING
    waiting = plan(prio, alive={"s1", "s2"}, here="s1", unheard={"s2"}, **gave_up)
    assert waiting.action is Action.NOTHING and waiting.reason == "waiting to hear from s2"


def test_a_server_still_bringing_it_up_does_not_make_the_holder_give_up() -> None:
    from ipkeeper.engine.decide import plan

    prio = {"s1": 1, "s2": 10}
    decision = plan(prio, holders={"s1", "s2"}, running={"s2"}, dead_holders=set(), failed=set(),
                    alive={"s1", "s2"}, here="s2", may_take_over=True)  # fmt: skip
    assert decision.action is Action.NOTHING
