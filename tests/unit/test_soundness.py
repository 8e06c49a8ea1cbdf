"""A damaged database is refused at start-up with one line, or set aside (store and engine
soundness); a sound one opens as before."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from ipkeeper.engine.soundness import open_sound
from ipkeeper.model.states import ResourceState
from ipkeeper.store.db import open_db
from ipkeeper.store.repo import InstanceRecord, Repo, ResourceRecord
from ipkeeper.store.soundness import DamagedDatabase, NewerDatabase

KINDS = ("app", "group", "ip")
PROPS = {"address": "198.18.0.50", "prefix": 24, "interface": "eth0"}


def made(path: Path, count: int = 30) -> Path:
    """A database with `count` IP resources, closed (its WAL folded in)."""
    repo = Repo(open_db(path))
    for i in range(count):
        rid = f"r{i:02d}"
        props = {**PROPS, "address": f"198.18.0.{50 + i}"}
        inst = InstanceRecord(rid, "s1", f"ip-{i}", 1, props)
        repo.insert_resource(ResourceRecord(rid, "ip", "intelligent", 1, (inst,)))
        repo.set_state(rid, ResourceState.OSU, "created")
    repo.db.close()
    return path


def sql(path: Path, *statements: str) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in statements:
        conn.execute(statement)
    conn.close()


def contents(directory: Path) -> dict[str, bytes]:
    """What is in the files of `directory` (SQLite may leave an empty -wal, and a -shm: a
    shared-memory index of the -wal that it rebuilds at will)."""
    return {
        p.name: p.read_bytes()
        for p in directory.iterdir()
        if p.stat().st_size and not p.name.endswith("-shm")
    }


def truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: 4096 * 3])


def bad_header(path: Path) -> None:
    path.write_bytes(b"NOT SQLITE AT AL" + path.read_bytes()[16:])


def random_bytes(path: Path) -> None:
    path.write_bytes(os.urandom(path.stat().st_size))


def broken_page(path: Path) -> None:
    data = bytearray(path.read_bytes())
    for offset in range(4096 * 2 + 40, 4096 * 2 + 60):
        data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def invalid_json(path: Path) -> None:
    sql(path, "UPDATE instances SET props = '{\"address\": \"198.18' WHERE resource_id = 'r03'")


def props_not_ip(path: Path) -> None:
    sql(path, "UPDATE instances SET props = '{\"address\": 7}' WHERE resource_id = 'r04'")


def bad_state(path: Path) -> None:
    sql(
        path,
        "PRAGMA ignore_check_constraints = ON",
        "UPDATE local_state SET state = 'ISX' WHERE resource_id = 'r05'",
    )


def version_zero(path: Path) -> None:
    sql(path, "PRAGMA user_version = 0")


def table_dropped(path: Path) -> None:
    sql(path, "DROP TABLE ping_lists")


def unknown_kind(path: Path) -> None:
    sql(path, "UPDATE resources SET kind = 'nfs' WHERE id = 'r06'")


CASES: list[tuple[Callable[[Path], None], str]] = [
    (truncated, "{db}: damaged: database disk image is malformed"),
    (bad_header, "{db}: not an SQLite database (its header is b'NOT SQLITE AT AL')"),
    (random_bytes, "{db}: not an SQLite database (its header is "),
    (broken_page, "{db}: damaged: "),
    (invalid_json, "{db}: table instances, row resource_id='r03': props is "),
    (props_not_ip, "{db}: resource r04: instance on s1 (ip-4): its properties do not make an IP resource"),
    (bad_state, "{db}: table local_state, row resource_id='r05': state is 'ISX', not ISP, ISU, OSU or OSF"),
    (version_zero, "{db}: schema version 0 but it holds tables (dependencies, events, instances, "),
    (table_dropped, "{db}: schema version 2 but table ping_lists is missing"),
    (unknown_kind, "{db}: resource r06: type 'nfs' is not one of app, group, ip"),
]  # fmt: skip


@pytest.mark.parametrize(("damage", "reason"), CASES, ids=[c[0].__name__ for c in CASES])
def test_damage_is_refused_with_one_line_and_nothing_changed(
    tmp_path: Path, damage: Callable[[Path], None], reason: str
) -> None:
    db = made(tmp_path / "ipkeeper.db")
    damage(db)
    before = contents(tmp_path)
    with pytest.raises(DamagedDatabase) as caught:
        open_sound(db, KINDS, resync=False)
    message = str(caught.value)
    assert message.startswith(reason.format(db=db)), message
    assert "\n" not in message and message.endswith('set damaged_database = "resync" in [server]')
    assert contents(tmp_path) == before


@pytest.mark.parametrize("damage", [truncated, invalid_json, version_zero])
def test_resync_sets_the_damaged_file_aside_and_starts_empty(
    tmp_path: Path, damage: Callable[[Path], None]
) -> None:
    db = made(tmp_path / "ipkeeper.db")
    damage(db)
    damaged = db.read_bytes()
    repo, note = open_sound(db, KINDS, resync=True)
    assert repo.resources() == [] and note is not None
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("ipkeeper.db.damaged-")]
    aside = [p for p in aside if not p.name.endswith(("-wal", "-shm"))]
    assert [p.read_bytes() for p in aside] == [damaged]
    assert f"moved aside to {aside[0].name}: starting with an empty database" in note


def test_a_sound_database_opens_with_its_rows(tmp_path: Path) -> None:
    db = made(tmp_path / "ipkeeper.db")
    repo, note = open_sound(db, KINDS, resync=True)
    assert note is None and len(repo.resources()) == 30
    assert repo.local_state("r07") is not None


def test_a_newer_database_is_never_set_aside(tmp_path: Path) -> None:
    db = made(tmp_path / "ipkeeper.db")
    sql(db, "PRAGMA user_version = 99")
    with pytest.raises(NewerDatabase, match="schema version 99 is newer than this ipkeeper"):
        open_sound(db, KINDS, resync=True)
    assert list(contents(tmp_path)) == ["ipkeeper.db"]


def test_an_event_row_that_does_not_decode_is_shown_not_fatal(tmp_path: Path) -> None:
    from ipkeeper.store.events import EventLog

    db = open_db(tmp_path / "ipkeeper.db")
    events = EventLog(db, "s1")
    events.add("admin", "hello", x=1)
    with db.transaction() as conn:
        conn.execute("UPDATE events SET details = '{broken'")
    assert events.recent()[-1].details == {"undecodable": "{broken"}
    assert json.dumps(events.recent()[-1].as_dict())
