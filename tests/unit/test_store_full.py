"""A disk that refuses writes (issue 11, item 7): states and events wait in memory and are
written once it takes writes again; a definition is refused with one line; nothing raises
on the way of a check, a recovery or a failover. The disk is played by a connection whose
COMMIT fails as SQLite's does on a full disk (the lab test fills a real one)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from ipkeeper.model.states import ResourceState
from ipkeeper.store.db import open_db
from ipkeeper.store.events import BACKLOG_MAX, EventLog
from ipkeeper.store.health import StoreUnavailable, is_store_failure
from ipkeeper.store.repo import InstanceRecord, Repo, ResourceRecord, StoredSet


class Disk:
    """Stands between the database and its SQLite connection: full or not."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.full = False
        self.commits = 0

    def execute(self, sql: str, *args: Any) -> Any:
        if sql == "COMMIT":
            self.commits += 1
            if self.full:
                error = sqlite3.OperationalError("database or disk is full")
                error.sqlite_errorcode = sqlite3.SQLITE_FULL  # type: ignore[attr-defined]
                raise error
        return self.conn.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


@pytest.fixture
def store(tmp_path: Path) -> tuple[Repo, EventLog, Disk]:
    db = open_db(tmp_path / "ipkeeper.db")
    disk = Disk(db._conn)
    db._conn = disk  # type: ignore[assignment]
    repo = Repo(db)
    for rid in ("r1", "r2"):
        inst = InstanceRecord(rid, "s1", f"ip-{rid}", 1, {"address": "198.18.0.50"})
        repo.insert_resource(ResourceRecord(rid, "ip", "intelligent", 1, (inst,)))
        repo.set_state(rid, ResourceState.ISP, "created")
    return repo, EventLog(db, "s1"), disk


def stored_state(repo: Repo, rid: str) -> tuple[str, str]:
    row = repo.db.query("SELECT state, reason FROM local_state WHERE resource_id = ?", (rid,))[0]
    return row["state"], row["reason"]


def test_states_and_events_wait_in_memory_and_are_written_later(
    store: tuple[Repo, EventLog, Disk],
) -> None:
    repo, events, disk = store
    changed: list[str] = []
    repo.listeners.append(changed.append)
    disk.full = True
    with repo.db.transaction():  # a layer of a takeover: states and events together
        repo.set_state("r1", ResourceState.OSF, "check failed", pending="remove")
        events.add("check-failed", "address missing", tag="ip-r1")
    repo.set_pending("r1", None)
    repo.set_state("r2", ResourceState.OSU, "taken down")
    assert repo.local_state("r1") is not None and repo.local_state("r1").state is ResourceState.OSF
    assert (
        repo.local_state("r1").pending is None and repo.local_state("r1").reason == "check failed"
    )
    assert changed == ["r1", "r1", "r2"]  # listeners hear of kept states as of written ones
    assert not repo.db.health.writable and repo.unsaved == 2 and events.waiting == 1
    assert stored_state(repo, "r1") == ("ISP", "created")  # the disk has the old one

    disk.full = False
    assert repo.flush_unsaved() == 2 and events.flush() == 1
    assert repo.db.health.writable and repo.unsaved == 0 and events.waiting == 0
    assert stored_state(repo, "r1") == ("OSF", "check failed")
    assert stored_state(repo, "r2") == ("OSU", "taken down")
    assert [e.message for e in events.recent()] == ["address missing"]
    recovery = repo.db.health.take_recovery()
    assert recovery is not None and recovery.failures == 3
    assert recovery.error == "database or disk is full"
    assert repo.db.health.take_recovery() is None


def test_a_definition_is_refused_and_nothing_of_it_kept(store: tuple[Repo, EventLog, Disk]) -> None:
    repo, _events, disk = store
    disk.full = True
    with pytest.raises(StoreUnavailable) as caught, repo.db.transaction():
        repo.set_switchback("r1", "automatic")
        repo.set_state("r1", ResourceState.OSU, "moved")
    assert str(caught.value) == (f"store: cannot write {repo.db.path} (database or disk is full)")
    assert (caught.value.field, caught.value.status) == ("store", 503)
    assert repo.resource("r1") is not None and repo.resource("r1").switchback == "intelligent"
    assert repo.local_state("r1").state is ResourceState.ISP and repo.unsaved == 0


def test_a_rollback_for_another_reason_never_undoes_what_waits(
    store: tuple[Repo, EventLog, Disk],
) -> None:
    repo, _events, disk = store
    disk.full = True
    repo.set_state("r1", ResourceState.OSF, "kept")
    disk.full = False
    with pytest.raises(ValueError), repo.db.transaction():
        repo.set_state("r1", ResourceState.ISP, "never")
        raise ValueError("abort")
    assert repo.local_state("r1").reason == "kept" and repo.unsaved == 1
    repo.set_state("r1", ResourceState.OSU, "written")  # a write of the same row saves it
    assert repo.unsaved == 0 and stored_state(repo, "r1") == ("OSU", "written")


def test_a_stored_set_and_deleted_resources_while_the_disk_is_full(
    store: tuple[Repo, EventLog, Disk],
) -> None:
    repo, _events, disk = store
    handed = StoredSet(repo, "handed_over")
    disk.full = True
    handed.add({"r1"})
    repo.set_state("r2", ResourceState.OSF, "failed")
    assert "r1" in handed and repo.setting("handed_over") == '["r1"]'
    disk.full = False
    repo.delete_resource("r2")  # gone before its state was written: nothing left to write
    assert repo.unsaved == 1 and repo.flush_unsaved() == 1
    assert repo.db.query("SELECT value FROM settings WHERE key = 'handed_over'")[0][0] == '["r1"]'
    assert repo.db.query("SELECT COUNT(*) FROM local_state WHERE resource_id = 'r2'")[0][0] == 0


def test_waiting_events_coalesce_keep_their_order_and_are_bounded(
    store: tuple[Repo, EventLog, Disk],
) -> None:
    repo, events, disk = store
    disk.full = True
    repo.set_state("r1", ResourceState.OSF, "failed")  # the disk refuses: the alarm is on
    commits = disk.commits
    for _ in range(5):
        events.add("check-failed", "link down", tag="ip-r1")
    events.add("recovered", "link up", tag="ip-r1")
    assert disk.commits == commits  # events never ask a disk that refused: the watch does
    assert events.waiting == 2
    disk.full = False
    repo.flush_unsaved()
    events.add("admin", "after", tag="ip-r2")  # what waited goes first
    logged = [(e.kind, e.count) for e in events.recent()]
    assert logged == [("check-failed", 5), ("recovered", 1), ("admin", 1)]

    disk.full = True
    repo.set_state("r1", ResourceState.ISP, "again")
    for i in range(BACKLOG_MAX + 7):
        events.add("check-failed", f"failure {i}", tag="ip-r1")
    assert events.waiting == BACKLOG_MAX and events.left_out == 7


def test_only_the_disk_s_refusals_are_store_failures() -> None:
    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorcode = sqlite3.SQLITE_FULL  # type: ignore[attr-defined]
    io = sqlite3.OperationalError("disk I/O error")
    io.sqlite_errorcode = 10 | (3 << 8)  # type: ignore[attr-defined]  # SQLITE_IOERR_WRITE
    locked = sqlite3.OperationalError("database is locked")
    locked.sqlite_errorcode = sqlite3.SQLITE_BUSY  # type: ignore[attr-defined]
    assert is_store_failure(full) and is_store_failure(io)
    assert not is_store_failure(locked) and not is_store_failure(sqlite3.IntegrityError("x"))
    assert not is_store_failure(ValueError("x"))
