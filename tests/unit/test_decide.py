"""Pure decisions: recovery budget, failover target, start-up reconciliation."""

from __future__ import annotations

import pytest

from ipkeeper.engine.decide import (
    Action,
    failover_target,
    on_check_failure,
    on_local_failure,
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
