"""Pure decisions: recovery budget, failover target, start-up reconciliation."""

from __future__ import annotations

import pytest

from ipkeeper.engine.decide import (
    Action,
    Decision,
    Policy,
    decide,
    defer_to_holders,
    failover_target,
    on_check_failure,
    on_local_failure,
    reconcile,
)
from ipkeeper.model.states import KitResult, Outcome, ResourceState
from ipkeeper.model.view import Attempt
from ipkeeper.testing.views import HID, scene

NONE = Policy()
MAJORITY = Policy(quorum="majority", quorum_release=2.0, quorum_grace=1.0)


def at(view, now: float = 100.0, policy: Policy = NONE) -> Decision:  # type: ignore[no-untyped-def]
    return decide(view, HID, now, policy)


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
    planned = at(scene("s3", prio, failed={"s1", "s2"}, abandoned={"s1"}, alive=alive))
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


def test_takes_over_only_on_the_best_live_server() -> None:
    prio = {"s1": 1, "s2": 10, "s3": 20}
    assert at(scene("s2", prio, dead={"s1"})).action is Action.RESTORE
    waits = at(scene("s3", prio, dead={"s1"}))
    assert waits.action is Action.NOTHING and waits.target == "s2"
    assert at(scene("s3", prio, dead={"s1"}, failed={"s2"})).action is Action.RESTORE
    # A server where it failed once is still used when no other is left.
    last = at(scene("s2", prio, dead={"s1"}, alive={"s2"}, failed={"s2"}))
    assert last.action is Action.RESTORE


def test_heals_a_split_brain_toward_the_better_priority() -> None:
    prio = {"s1": 1, "s2": 10}
    give_up = at(scene("s2", prio, holders={"s1", "s2"}))
    assert give_up.action is Action.REMOVE and give_up.target == "s1"
    assert at(scene("s1", prio, holders={"s1", "s2"})).action is Action.NOTHING


def test_the_winner_of_a_split_brain_announces_once_the_loser_gave_it_up() -> None:
    prio = {"s1": 1, "s2": 10}
    during = at(scene("s1", prio, holders={"s1", "s2"}, dual=True))
    assert during.action is Action.NOTHING  # the loser has not removed it yet
    after = at(scene("s1", prio, holders={"s1"}, dual=True))
    assert after.action is Action.ANNOUNCE and "s2 gave it up" in after.reason
    assert at(scene("s1", prio, holders={"s1"})).action is Action.NOTHING  # announced already


def test_defer_to_holders_at_start_up() -> None:
    adopt = Decision(Action.ADOPT, "recorded in service and active: adopted")
    assert defer_to_holders(adopt, {"s2"}).action is Action.REMOVE
    restore = Decision(Action.RESTORE, "x")
    assert defer_to_holders(restore, {"s2"}).action is Action.STAND_DOWN
    assert defer_to_holders(restore, {"s2"}, active=True).action is Action.REMOVE
    assert defer_to_holders(restore, set()) is restore


def test_a_hierarchy_given_up_after_a_failure_is_taken_by_the_next_server() -> None:
    prio = {"s1": 1, "s2": 10, "s3": 20}
    taken = at(scene("s2", prio, failed={"s1"}, abandoned={"s1"}))
    assert taken.action is Action.RESTORE
    assert taken.reason == "s1 gave it up after a failure; taking it over (priority 10)"
    assert at(scene("s3", prio, failed={"s1"}, abandoned={"s1"})).action is Action.NOTHING
    assert at(scene("s2", prio, failed={"s1"})).action is Action.NOTHING  # merely out of service


def test_a_server_never_takes_back_what_it_gave_up_and_waits_for_silent_peers() -> None:
    prio = {"s1": 1, "s2": 10}
    gave_up = dict(failed={"s1"}, abandoned={"s1"})
    # s1 came back before hearing that s2 took over: it must not take its VIP back.
    assert at(scene("s1", prio, alive={"s1"}, **gave_up)).action is Action.NOTHING
    waiting = at(scene("s1", prio, unheard={"s2"}, **gave_up))
    assert waiting.action is Action.NOTHING and waiting.reason == "waiting to hear from s2"


def test_a_server_still_bringing_it_up_does_not_make_the_holder_give_up() -> None:
    decision = at(scene("s2", {"s1": 1, "s2": 10}, holders={"s1", "s2"}, running={"s2"}))
    assert decision.action is Action.NOTHING


# -- decisions that depend on time --------------------------------------------------


def test_majority_fences_a_takeover_until_a_cut_off_holder_has_given_up() -> None:
    view = scene("s2", {"s1": 1, "s2": 10}, dead={"s1"}, witnesses={"w"}, quorum="majority",
                 died_at={"s1": 100.0})  # fmt: skip
    early = at(view, 100.5, MAJORITY)
    assert early.action is Action.WAIT and early.wait_until == 103.0
    assert "waiting 2.5s before taking it over" in early.reason
    assert at(view, 102.99, MAJORITY).action is Action.WAIT
    assert at(view, 103.0, MAJORITY).action is Action.RESTORE
    # Without majority quorum nothing waits.
    assert at(view, 100.5, NONE).action is Action.RESTORE


def test_a_holder_that_died_before_this_server_started_is_fenced_from_the_start() -> None:
    view = scene("s2", {"s1": 1, "s2": 10}, dead={"s1"}, witnesses={"w"}, quorum="majority",
                 started=50.0)  # fmt: skip
    assert at(view, 52.0, MAJORITY).wait_until == 53.0


def test_a_minority_gives_up_what_it_holds_after_quorum_release() -> None:
    view = scene("s1", {"s1": 1, "s2": 10}, holders={"s1"}, alive={"s1"}, witnesses={"w"},
                 quorum="majority", minority_since=200.0)  # fmt: skip
    waiting = at(view, 201.0, MAJORITY)
    assert waiting.action is Action.WAIT and waiting.wait_until == 202.0
    gone = at(view, 202.0, MAJORITY)
    assert gone.action is Action.REMOVE and gone.reason == "no quorum for 2s: giving it up (R32)"
    # ... and takes nothing over, however long it waits.
    orphan = scene("s2", {"s1": 1, "s2": 10}, dead={"s1"}, alive={"s2"}, witnesses={"w"},
                   quorum="majority", minority_since=200.0, died_at={"s1": 0.0})  # fmt: skip
    assert at(orphan, 1000.0, MAJORITY).action is Action.NOTHING


def test_back_off_after_failed_takeovers() -> None:
    prio = {"s1": 1, "s2": 10}
    for tries, wait in ((1, 0.5), (2, 1.0), (3, 2.0), (5, 8.0), (6, 10.0), (9, 10.0)):
        view = scene("s2", prio, dead={"s1"}, attempt=Attempt(300.0, tries))
        decision = at(view, 300.0 + wait - 0.01)
        assert decision.action is Action.WAIT and decision.wait_until == 300.0 + wait
        assert at(view, 300.0 + wait).action is Action.RESTORE


def test_automatic_switchback_to_a_better_server_that_rejoined_after_the_takeover() -> None:
    prio = {"s1": 1, "s2": 10}
    back = scene("s2", prio, holders={"s2"}, switchback="automatic", held_since=10.0,
                 joined_at={"s1": 20.0})  # fmt: skip
    decision = at(back)
    assert decision.action is Action.SWITCH_BACK and decision.target == "s1"
    # It was already there when this server took the hierarchy (an administrator moved it).
    moved = scene("s2", prio, holders={"s2"}, switchback="automatic", held_since=30.0,
                  joined_at={"s1": 20.0})  # fmt: skip
    assert at(moved).action is Action.NOTHING
    intelligent = scene("s2", prio, holders={"s2"}, held_since=10.0, joined_at={"s1": 20.0})
    assert at(intelligent).action is Action.NOTHING
    failed_there = scene("s2", prio, holders={"s2"}, switchback="automatic", held_since=10.0,
                         joined_at={"s1": 20.0}, failed={"s1"})  # fmt: skip
    assert at(failed_there).action is Action.NOTHING


def test_switchback_waits_until_the_better_server_has_been_up_switchback_delay() -> None:
    prio = {"s1": 1, "s2": 10}
    back = scene("s2", prio, holders={"s2"}, switchback="automatic", held_since=10.0,
                 joined_at={"s1": 95.0})  # fmt: skip
    steady = Policy(switchback_delay=10.0)
    waiting = at(back, 100.0, steady)
    assert waiting.action is Action.WAIT and waiting.wait_until == 105.0
    assert waiting.reason == (
        "waiting 5.0s more for s1 to be stable before switching back (SWITCHBACK_DELAY=10s)"
    )
    assert at(back, 105.0, steady).action is Action.SWITCH_BACK
    # A server that flaps rejoins again and again: each return starts the wait over.
    again = scene("s2", prio, holders={"s2"}, switchback="automatic", held_since=10.0,
                  joined_at={"s1": 104.0})  # fmt: skip
    assert at(again, 105.0, steady).action is Action.WAIT


def test_an_active_resource_known_only_from_a_peer_s_definitions_is_adopted() -> None:
    # The holder's store was wiped and rebuilt from its peer: nothing here ever
    # decided to take it down, so what is up is kept (one holder, not none).
    learnt = reconcile(ResourceState.OSU, None, active=True, learnt=True)
    assert learnt.action is Action.ADOPT and "store was rebuilt" in learnt.reason
    assert reconcile(ResourceState.OSU, None, active=True).action is Action.REMOVE
    assert reconcile(ResourceState.OSU, None, active=False, learnt=True).action is Action.NOTHING
    held = defer_to_holders(learnt, {"s1"}, active=True)
    assert held.action is Action.REMOVE  # ... unless another server runs it


def test_a_peer_never_heard_since_start_may_hold_anything_so_an_address_is_checked() -> None:
    prio = {"s1": 1, "s2": 10}
    # s2 restarted just after s1 died (or only s2 came back after a power cut).
    alone = scene("s2", prio, alive={"s2"})
    taken = at(alone)
    assert taken.action is Action.RESTORE
    assert taken.reason.startswith("s1 not heard from since this server started, and nobody")
    # An administrator had taken it out of service: it stays out.
    withdrawn = scene("s2", prio, alive={"s2"}, withdrawn=True)
    assert at(withdrawn).action is Action.NOTHING
    # s1 was heard, then died, holding nothing: plainly out of service.
    heard = scene("s2", prio, alive={"s2"}, died_at={"s1": 50.0})
    assert at(heard).reason == "out of service"
    # An application nothing guards (no IP resource below it) may be running on s1: left.
    bare = at(scene("s2", prio, alive={"s2"}, guarded=False))
    assert bare.action is Action.NOTHING
    assert bare.reason.endswith("with no IP resource below its applications nothing can tell")


def test_a_failure_recorded_before_a_restart_is_forgotten_at_start_up() -> None:
    # Item 11: otherwise a repaired server never gets its hierarchy back by switchback.
    assert reconcile(ResourceState.OSF, None, active=False).action is Action.STAND_DOWN
    assert reconcile(ResourceState.OSF, None, active=True).action is Action.REMOVE


# -- agreed membership (issue 11, item 1) --------------------------------------------


def test_a_partial_partition_takes_nothing_over_while_the_third_voter_sees_the_holder() -> None:
    # s1 and s2 cannot reach each other; both reach s3. s2 sees two of three votes and
    # s1 dead, but s3 sees s1 alive: s1 keeps the VIP and s2 must not take it.
    view = scene("s2", {"s1": 1, "s2": 10, "s3": 20}, dead={"s1"}, quorum="majority",
                 died_at={"s1": 100.0}, sees={"s3": {"s1", "s2"}})  # fmt: skip
    d = decide(view, HID, 200.0, MAJORITY)
    assert d.action is Action.WAIT
    assert "s3 does not agree" in d.reason and "1 of 3 votes" in d.reason
    assert d.wait_until is not None and d.wait_until > 200.0


def test_once_the_third_voter_agrees_the_holder_is_gone_the_takeover_goes_ahead() -> None:
    view = scene("s2", {"s1": 1, "s2": 10, "s3": 20}, dead={"s1"}, quorum="majority",
                 died_at={"s1": 100.0}, sees={"s3": {"s2"}})  # fmt: skip
    assert decide(view, HID, 200.0, MAJORITY).action is Action.RESTORE


def test_a_voter_that_has_not_said_what_it_sees_does_not_agree() -> None:
    view = scene("s2", {"s1": 1, "s2": 10, "s3": 20}, dead={"s1"}, quorum="majority",
                 died_at={"s1": 100.0}, sees={"s3": None})  # fmt: skip
    assert decide(view, HID, 200.0, MAJORITY).action is Action.WAIT


def test_a_witness_that_still_sees_the_holder_stops_the_takeover_too() -> None:
    view = scene("s2", {"s1": 1, "s2": 10}, dead={"s1"}, witnesses={"w"}, quorum="majority",
                 died_at={"s1": 100.0}, sees={"w": {"s1", "s2"}})  # fmt: skip
    d = decide(view, HID, 200.0, MAJORITY)
    assert d.action is Action.WAIT and "w does not agree" in d.reason


def test_agreement_is_not_asked_without_majority_quorum() -> None:
    view = scene("s2", {"s1": 1, "s2": 10, "s3": 20}, dead={"s1"},
                 died_at={"s1": 100.0}, sees={"s3": {"s1", "s2"}})  # fmt: skip
    assert decide(view, HID, 200.0, Policy()).action is Action.RESTORE
