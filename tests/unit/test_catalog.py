"""Catalog replication: newer wins, tombstones outrank, equal versions that differ conflict."""

from __future__ import annotations

from pathlib import Path

from ipkeeper.cluster import catalog
from ipkeeper.model.states import ResourceState
from ipkeeper.store.db import open_db
from ipkeeper.store.repo import InstanceRecord, Repo, ResourceRecord


def repo_at(tmp_path: Path, name: str) -> Repo:
    return Repo(open_db(tmp_path / f"{name}.db"))


def vip(version: int = 1, servers: tuple[str, ...] = ("s1",)) -> ResourceRecord:
    return ResourceRecord(
        "r1", "ip", "intelligent", version,
        tuple(InstanceRecord("r1", s, "ip-a", 1 + 9 * i, {"address": "198.18.0.50"}) for i, s in enumerate(servers)),
    )  # fmt: skip


def test_a_newer_document_is_applied_and_creates_the_local_state(tmp_path: Path) -> None:
    s1, s2 = repo_at(tmp_path, "s1"), repo_at(tmp_path, "s2")
    s1.insert_resource(vip(2, ("s1", "s2")))
    doc = catalog.export(s1, s1.resource("r1"))  # type: ignore[arg-type]
    assert catalog.apply(s2, doc, "s2") is catalog.Applied.APPLIED
    assert s2.local_state("r1").state is ResourceState.OSU  # type: ignore[union-attr]
    assert catalog.apply(s2, doc, "s2") is catalog.Applied.SAME
    older = doc | {"version": 1}
    assert catalog.apply(s2, older, "s2") is catalog.Applied.OLDER


def test_equal_versions_with_different_content_conflict(tmp_path: Path) -> None:
    s1, s2 = repo_at(tmp_path, "s1"), repo_at(tmp_path, "s2")
    s1.insert_resource(vip(2))
    s2.insert_resource(vip(2))
    s2.set_switchback("r1", "automatic")
    doc = catalog.export(s1, s1.resource("r1"))  # type: ignore[arg-type]
    assert catalog.apply(s2, doc, "s2") is catalog.Applied.CONFLICT
    plan = catalog.plan_sync(catalog.digest(s1), catalog.digest(s2))
    assert plan.conflicts == ["r1"] and plan.docs == []


def test_an_instance_in_service_is_never_removed_by_a_peer(tmp_path: Path) -> None:
    s2 = repo_at(tmp_path, "s2")
    s2.insert_resource(vip(1, ("s1", "s2")))
    s2.set_state("r1", ResourceState.ISP, "up")
    unextended = catalog.export(s2, s2.resource("r1")) | {"version": 2}  # type: ignore[arg-type]
    unextended["instances"] = [i for i in unextended["instances"] if i["server"] == "s1"]
    assert catalog.apply(s2, unextended, "s2") is catalog.Applied.REFUSED
    assert catalog.apply_tombstone(s2, "r1", 9, "ip-a") is catalog.Applied.REFUSED


def test_sync_plan_sends_what_the_peer_lacks_and_tombstones_win(tmp_path: Path) -> None:
    s1, s2 = repo_at(tmp_path, "s1"), repo_at(tmp_path, "s2")
    s1.insert_resource(vip(3))
    s2.insert_resource(vip(2))
    plan = catalog.plan_sync(catalog.digest(s1), catalog.digest(s2))
    assert plan.docs == ["r1"]
    s1.delete_resource("r1")  # tombstone at version 4
    plan = catalog.plan_sync(catalog.digest(s1), catalog.digest(s2))
    assert plan.tombstones == ["r1"]
    assert catalog.apply_tombstone(s2, "r1", 4, "ip-a") is catalog.Applied.APPLIED
    assert s2.resource("r1") is None
    # A peer that still had the old definition cannot bring it back.
    old = {
        "id": "r1",
        "kind": "ip",
        "switchback": "intelligent",
        "version": 3,
        "instances": [],
        "children": [],
    }
    assert catalog.apply(s2, old, "s2") is catalog.Applied.OLDER


def test_children_come_before_their_parents() -> None:
    docs = [{"id": "app", "children": ["ip"]}, {"id": "ip", "children": []}]
    assert [d["id"] for d in catalog.order_children_first(docs)] == ["ip", "app"]


def test_this_servers_own_settings_are_never_overwritten(tmp_path: Path) -> None:
    s2 = repo_at(tmp_path, "s2")
    s2.insert_resource(vip(1, ("s1", "s2")))
    theirs = catalog.export(s2, s2.resource("r1")) | {"version": 5}  # type: ignore[arg-type]
    for inst in theirs["instances"]:
        if inst["server"] == "s2":
            inst["props"] = {"address": "198.18.0.50", "source_address": True}
    assert catalog.apply(s2, theirs, "s2") is catalog.Applied.CONFLICT
    assert s2.resource("r1").version == 1  # type: ignore[union-attr]


def test_deleted_there_and_changed_here_at_the_same_count_is_a_conflict(tmp_path: Path) -> None:
    s1, s2 = repo_at(tmp_path, "s1"), repo_at(tmp_path, "s2")
    s1.insert_resource(vip(2))
    s2.insert_resource(vip(1))
    s2.delete_resource("r1")  # tombstone at 2, while s1 changed it to 2
    plan = catalog.plan_sync(catalog.digest(s1), catalog.digest(s2))
    assert plan.conflicts == ["r1"]
    assert catalog.apply_tombstone(s1, "r1", 2, "ip-a") is catalog.Applied.CONFLICT
    assert s1.resource("r1") is not None


def test_nothing_is_deleted_under_an_action_in_flight(tmp_path: Path) -> None:
    s2 = repo_at(tmp_path, "s2")
    s2.insert_resource(vip(1, ("s1", "s2")))
    s2.set_state("r1", ResourceState.OSU, "taking over", pending="restore")
    assert catalog.apply_tombstone(s2, "r1", 5, "ip-a") is catalog.Applied.REFUSED
