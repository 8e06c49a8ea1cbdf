"""The SQLite store: schema, transactions, states, tombstones."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ipkeeper.model.states import ResourceState
from ipkeeper.store.db import SCHEMA_VERSION, open_db
from ipkeeper.store.events import EventLog
from ipkeeper.store.repo import InstanceRecord, Repo, ResourceRecord, StoredSet
from ipkeeper.store.soundness import NewerDatabase


def make(repo: Repo, rid: str = "r1", tag: str = "ip-a") -> ResourceRecord:
    rec = ResourceRecord(
        rid,
        "ip",
        "intelligent",
        1,
        (InstanceRecord(rid, "s1", tag, 1, {"address": "198.18.0.50"}),),
    )
    repo.insert_resource(rec)
    return rec


def test_schema_is_versioned_and_reopening_keeps_data(tmp_path: Path) -> None:
    db = open_db(tmp_path / "db")
    assert db.schema_version() == SCHEMA_VERSION
    make(Repo(db))
    db.close()
    again = Repo(open_db(tmp_path / "db"))
    assert again.resource_by_tag("ip-a") is not None
    assert again.db.query("PRAGMA journal_mode")[0][0] == "wal"


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "db")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(NewerDatabase, match="newer than this ipkeeper"):
        open_db(tmp_path / "db")


def test_a_failed_transaction_changes_nothing(tmp_path: Path) -> None:
    repo = Repo(open_db(tmp_path / "db"))
    with pytest.raises(sqlite3.IntegrityError), repo.db.transaction():
        make(repo, "r1", "ip-a")
        make(repo, "r2", "ip-a")  # same tag on the same server: refused
    assert repo.resources() == []


def test_states_pending_and_since(tmp_path: Path) -> None:
    repo = Repo(open_db(tmp_path / "db"))
    make(repo)
    repo.set_state("r1", ResourceState.OSU, "created", pending="create")
    first = repo.local_state("r1")
    assert first is not None and first.pending == "create"
    repo.set_state("r1", ResourceState.OSU, "still")
    same = repo.local_state("r1")
    assert same is not None and same.since == first.since and same.pending is None
    repo.set_state("r1", ResourceState.ISP, "up")
    moved = repo.local_state("r1")
    assert moved is not None and moved.since >= first.since and moved.state is ResourceState.ISP
    with pytest.raises(ValueError, match="pending"):
        repo.set_state("r1", ResourceState.ISP, "x", pending="bogus")


def test_delete_leaves_a_tombstone_and_cascades(tmp_path: Path) -> None:
    repo = Repo(open_db(tmp_path / "db"))
    make(repo, "r1", "ip-a")
    make(repo, "r2", "app")
    repo.add_dependency("r2", "r1")
    repo.set_state("r1", ResourceState.ISP, "up")
    repo.delete_resource("r1")
    assert repo.resource("r1") is None
    assert repo.tombstone("r1") == 2
    assert repo.dependencies() == []
    assert repo.local_state("r1") is None


def test_ping_lists_and_events(tmp_path: Path) -> None:
    db = open_db(tmp_path / "db")
    repo = Repo(db)
    repo.set_ping_list("198.18.0.0/24", ["198.18.0.1"])
    assert repo.ping_list("198.18.0.0/24") == ["198.18.0.1"]
    repo.set_ping_list("198.18.0.0/24", [])
    assert repo.ping_list("198.18.0.0/24") == []
    log = EventLog(db, "s1")
    first = log.add("admin", "one", tag="t")
    log.add("admin", "two")
    assert [e.message for e in log.recent(10)] == ["one", "two"]
    assert [e.message for e in log.recent(10, after=first.id)] == ["two"]
    assert [e.message for e in log.recent(10, tag="t")] == ["one"]


def test_a_stored_set_survives_reopening(tmp_path: Path) -> None:
    db = open_db(tmp_path / "db")
    handed = StoredSet(Repo(db), "handed_over")
    handed.add({"r1", "r2"})
    handed.discard({"r2", "r9"})
    assert "r1" in handed and "r2" not in handed
    db.close()
    repo = Repo(open_db(tmp_path / "db"))
    again = StoredSet(repo, "handed_over")
    assert "r1" in again and "r2" not in again
    for damaged in ("not json", '"r1"', "[1, 2]"):
        repo.set_setting("damaged", damaged)
        assert "r1" not in StoredSet(repo, "damaged")


def test_the_mirror_matches_the_database_after_commits_and_rollbacks(tmp_path: Path) -> None:
    db = open_db(tmp_path / "db")
    repo = Repo(db)
    make(repo, "r1", "ip-a")
    make(repo, "r2", "app")
    repo.set_state("r1", ResourceState.ISP, "up")
    with pytest.raises(RuntimeError), repo.db.transaction():
        repo.set_state("r1", ResourceState.OSF, "never committed")
        repo.add_dependency("r2", "r1")
        repo.set_ping_list("198.18.0.0/24", ["198.18.0.1"])
        raise RuntimeError("abort")
    state = repo.local_state("r1")
    assert state is not None and state.state is ResourceState.ISP
    assert repo.dependencies() == [] and repo.ping_list("198.18.0.0/24") == []
    with repo.db.transaction():
        repo.add_dependency("r2", "r1")
        repo.set_setting("k", "v")
    fresh = Repo(db)
    assert fresh.resources() == repo.resources()
    assert fresh.local_states() == repo.local_states()
    assert fresh.dependencies() == repo.dependencies() == [("r2", "r1")]
    assert fresh.setting("k") == repo.setting("k") == "v"
    assert repo.graph().component("r1") == {"r1", "r2"}
    assert repo.resource_by_tag("app") == repo.resource("r2")


def test_an_event_storm_stays_within_the_log_s_bounds(tmp_path: Path) -> None:
    from ipkeeper.config.tunables import Tunables
    from ipkeeper.store import events as events_module

    tunables = tmp_path / "tunables"
    tunables.write_text("EVENTS_MAX_ROWS=1000\n")
    log = EventLog(open_db(tmp_path / "db"), "s1", Tunables(tunables))
    # One root cause repeated: one row, counted.
    for _ in range(5000):
        log.add("not-taken", "198.18.0.50 is already in use on the network", tag="ip-a")
    [row] = log.recent(10)
    assert row.count == 5000 and row.last is not None
    # Alternations keep their order: nothing is merged across them.
    for state in ("OSF", "ISP", "OSF"):
        log.add("state", f"{state}: x", tag="ip-b")
    assert [e.message for e in log.recent(3)] == ["OSF: x", "ISP: x", "OSF: x"]
    # A storm of different events: pruned to the newest EVENTS_MAX_ROWS.
    for i in range(3 * events_module.PRUNE_EVERY + 7):
        log.add("path", f"comm path {i} down", tag=None)
    assert log.count() <= 1000 + events_module.PRUNE_EVERY
    log.prune()
    assert log.count() == 1000
    assert log.recent(1)[0].message == f"comm path {3 * events_module.PRUNE_EVERY + 6} down"
