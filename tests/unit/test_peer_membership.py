"""The peer table keeps what each peer says it sees alive (its membership), newest
report only, forgotten when that peer restarts or comes back (issue 11, item 1)."""

from ipkeeper.engine.peertable import PeerTable


def table() -> tuple[PeerTable, list[tuple[str, set[str] | None]]]:
    told: list[tuple[str, set[str] | None]] = []
    t = PeerTable("s2", [("s1", False), ("s3", False), ("w", True)], clock=lambda: 10.0)
    t.listeners.append(lambda name, changed: told.append((name, changed)))
    return t, told


def test_a_report_carries_the_peers_membership_and_a_change_marks_everything() -> None:
    t, told = table()
    t.alive_changed("s3", True)
    t.alive_changed("s1", True)
    t.alive_changed("w", True)
    assert t.seen_alive() == ["s1", "s3", "w"]  # witnesses too: they vote
    told.clear()
    t.report("s3", "run", 1, True, {}, ["s1", "s2"])
    assert t.peers["s3"].sees == frozenset({"s1", "s2"})
    assert ("s3", None) in told
    t.report("s3", "run", 1, True, {}, ["s2"])  # stale: the same sequence again
    assert t.peers["s3"].sees == frozenset({"s1", "s2"})
    t.report("s3", "run", 2, True, {}, ["s2"])
    assert t.peers["s3"].sees == frozenset({"s2"})


def test_what_a_peer_saw_is_forgotten_when_it_restarts() -> None:
    t, _ = table()
    t.alive_changed("s3", True)
    t.report("s3", "run", 1, True, {}, ["s1", "s2"])
    t.restarted("s3")
    assert t.peers["s3"].sees is None
