"""Issue 11, item 8: the pure decisions about a VIP nobody on its subnet answers for."""

from __future__ import annotations

from ipkeeper.engine.decide import Action, Reach, no_responder, on_unreachable, reach_of
from ipkeeper.model.states import KitResult, Outcome

SUBNET = "198.18.0.0/24"
WHY = "quick_check failed (reachability: nobody answered)"
PRIORITIES = {"s1": 1, "s2": 10, "s3": 20}


def nobody() -> KitResult:
    return KitResult(
        Outcome.FAILED_LOCAL,
        "reachability: nobody answered a ping of 198.18.0.255 from 198.18.0.50 (3 tries)",
        step="reachability",
        details={"no_responder": True, "subnet": SUBNET},
    )


def test_only_a_reachability_failure_where_nobody_answered_is_no_responder() -> None:
    assert no_responder(nobody())
    assert not no_responder(None)
    assert not no_responder(KitResult.success("ping list: 198.18.0.1 answered"))
    cannot_ping = KitResult(
        Outcome.FAILED_LOCAL, "reachability: cannot ping from 198.18.0.50", step="reachability"
    )
    assert not no_responder(cannot_ping)  # a local fault: recovery or failover can help
    link = KitResult(Outcome.FAILED_LOCAL, "link: eth0 has no carrier", step="link")
    assert not no_responder(link)


def test_a_test_result_maps_to_reached_none_or_unknown() -> None:
    assert reach_of(KitResult.success("198.18.0.1 answered")) is Reach.REACHED
    assert reach_of(nobody()) is Reach.NONE
    no_source = KitResult(Outcome.FAILED_LOCAL, "no address of it here", step="source")
    assert reach_of(no_source) is Reach.UNKNOWN


def test_nobody_reaches_a_responder_so_it_is_kept_here() -> None:
    answers = {"s2": (Reach.NONE, "nobody"), "s3": (Reach.NONE, "nobody")}
    decision = on_unreachable(WHY, SUBNET, "keep", "s1", answers, PRIORITIES)
    assert decision.action is Action.KEEP and decision.target is None
    assert decision.reason == (
        "kept in service unprotected: no responder on 198.18.0.0/24 from any server (s1, s2, s3)"
    )


def test_alone_it_is_kept_too() -> None:
    decision = on_unreachable(WHY, SUBNET, "keep", "s1", {}, {"s1": 1})
    assert decision.action is Action.KEEP
    assert decision.reason.endswith("from any server (s1)")


def test_it_moves_only_to_a_server_that_reached_one_the_best_of_them() -> None:
    answers = {"s2": (Reach.NONE, "nobody"), "s3": (Reach.REACHED, "198.18.0.1 answered")}
    decision = on_unreachable(WHY, SUBNET, "keep", "s1", answers, PRIORITIES)
    assert decision.action is Action.FAIL_OVER and decision.target == "s3"
    assert "no responder on 198.18.0.0/24 from s1, but s3 reaches one" in decision.reason
    both = {"s2": (Reach.REACHED, "ok"), "s3": (Reach.REACHED, "ok")}
    assert on_unreachable(WHY, SUBNET, "keep", "s1", both, PRIORITIES).target == "s2"
    # A server where it failed before comes last, as in every hand-over.
    failed = on_unreachable(WHY, SUBNET, "keep", "s1", both, PRIORITIES, failed={"s2"})
    assert failed.target == "s3"
    alone = on_unreachable(WHY, SUBNET, "keep", "s1", {"s2": both["s2"]}, PRIORITIES, {"s2"})
    assert alone.target == "s2"


def test_a_server_that_cannot_tell_is_not_moved_to_and_is_named() -> None:
    answers = {"s2": (Reach.UNKNOWN, "no address of 198.18.0.0/24 on eth0 here to test from")}
    decision = on_unreachable(WHY, SUBNET, "keep", "s1", answers, PRIORITIES)
    assert decision.action is Action.KEEP
    assert decision.reason == (
        "kept in service unprotected: no responder on 198.18.0.0/24 from s1 "
        "(s2 cannot tell: no address of 198.18.0.0/24 on eth0 here to test from)"
    )


def test_the_failover_policy_treats_it_as_any_failure() -> None:
    decision = on_unreachable(WHY, SUBNET, "failover", "s1", {}, PRIORITIES)
    assert decision.action is Action.FAIL_OVER and decision.target is None
    assert decision.reason == f"{WHY}; NO_RESPONDER=failover: failing over"
