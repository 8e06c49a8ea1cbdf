"""The ownership sampler's arithmetic: longest dual and longest absence."""

from ipkeeper.testing.ownership import Timeline


def test_longest_dual_and_absence_are_measured_between_changes() -> None:
    t = Timeline()
    for at, who in [(0.0, {"s1"}), (0.5, {"s1"}), (1.0, set()), (1.3, {"s2"}), (2.0, {"s1", "s2"})]:
        t.note(at, frozenset(who))
    t.note(2.25, frozenset({"s1"}))
    assert len(t.changes) == 5  # the repeated sample is not a change
    assert abs(t.longest("none", 3.0) - 0.3) < 1e-9
    assert abs(t.longest("many", 3.0) - 0.25) < 1e-9
    assert "nobody" in t.story(0.0)


def test_a_timeline_that_ends_on_two_holders_counts_up_to_the_end() -> None:
    t = Timeline()
    t.note(0.0, frozenset({"s1", "s2"}))
    assert t.longest("many", 4.0) == 4.0 and t.longest("none", 4.0) == 0.0
