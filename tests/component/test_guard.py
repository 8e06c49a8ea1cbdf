"""Refusing what would leave an application unguarded on two servers under QUORUM=none
(engine/guard.py), with real engines and stores over the fake network: extend,
undepend, apply's plan, the start-up warning and what status says."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from ipkeeper.engine import guard
from ipkeeper.engine.admin import depend, undepend
from ipkeeper.engine.errors import OpError
from ipkeeper.engine.extend import extend
from ipkeeper.model.states import ResourceState
from ipkeeper.store.repo import InstanceRecord, ResourceRecord
from ipkeeper.testing.fakes import ComponentCluster

WAYS_OUT = "use QUORUM=majority with a witness, or set UNGUARDED_APPS=allow"


def put(
    cluster: ComponentCluster,
    tag: str,
    kind: str,
    servers: list[str],
    children: tuple[str, ...] = (),
) -> str:
    """A resource of any kind stored on every member as the catalog would have it (states
    only where extended; kinds other than the fake one are never brought up here)."""
    rid = f"id-{tag}"
    record = ResourceRecord(
        rid,
        kind,
        "intelligent",
        1,
        tuple(InstanceRecord(rid, s, tag, i + 1, {}) for i, s in enumerate(servers)),
        time.time(),
    )
    for member in cluster.members.values():
        repo = member.engine.repo
        with repo.db.transaction():
            repo.insert_resource(record)
            for child in children:
                repo.add_dependency(rid, f"id-{child}")
            if member.name in servers:
                repo.set_state(rid, ResourceState.OSU, "defined")
    return rid


def catalog(cluster: ComponentCluster) -> dict[str, list[tuple[str, list[str], list[str]]]]:
    """Every member's definitions: each tag with its servers and its children."""
    found = {}
    for name, member in cluster.members.items():
        repo = member.engine.repo
        graph = repo.graph()
        found[name] = sorted(
            (
                r.tag_on(name),
                sorted(i.server for i in r.instances),
                sorted(graph.children.get(r.id, ())),
            )
            for r in repo.resources()
        )
    return found


async def started(tmp_path: Path, tunables: str = "") -> ComponentCluster:
    cluster = await ComponentCluster.start(tmp_path, ["s1", "s2"], tunables=tunables)
    cluster.define("web", {"s1": 1})  # an application: it runs something, and is no IP
    await cluster.bring_up("s1", "web")
    return cluster


@pytest_asyncio.fixture
async def pair(tmp_path: Path) -> AsyncIterator[ComponentCluster]:
    cluster = await started(tmp_path)
    yield cluster
    await cluster.close()


@pytest.mark.asyncio
async def test_extending_an_application_with_no_ip_below_it_is_refused_and_changes_nothing(
    pair: ComponentCluster,
) -> None:
    s1 = pair.members["s1"].engine
    before = catalog(pair)
    for dry_run in (True, False):
        with pytest.raises(OpError) as refused:
            await extend(s1, "web", "s2", dry_run=dry_run)
        assert refused.value.field == "target" and refused.value.status == 409
        assert refused.value.reason == (
            "web has no IP resource below it; with QUORUM=none nothing would stop it running "
            "on s1 and s2 at once when the comm paths are cut (make it depend on an IP "
            f"resource first, {WAYS_OUT})"
        )
    await pair.settle()
    assert catalog(pair) == before
    assert pair.events("s1", "admin") == []


@pytest.mark.asyncio
async def test_with_unguarded_apps_allowed_the_extend_passes_and_status_says_so(
    tmp_path: Path,
) -> None:
    cluster = await started(tmp_path, "UNGUARDED_APPS=allow\n")
    try:
        s1 = cluster.members["s1"].engine
        done = await extend(s1, "web", "s2")
        assert done["warnings"] == [
            "web is guarded by nothing: with QUORUM=none it may run on s1 and s2 at once when "
            "the comm paths are cut (UNGUARDED_APPS=allow)"
        ]
        await cluster.settle()
        shown = guard.hierarchies(s1)
        assert shown == [
            {
                "tag": "web",
                "resources": 1,
                "servers": ["s1", "s2"],
                "guarded": False,
                "guard": "nothing: may run on two servers if the comm paths are cut "
                "(UNGUARDED_APPS=allow)",
                "unguarded": ["web"],
            }
        ]
        assert guard.quorum_note("", shown) == (
            "1 hierarchy is guarded by nothing and may run on two servers if the comm paths "
            "are cut: web"
        )
    finally:
        await cluster.close()


@pytest.mark.asyncio
async def test_under_majority_quorum_the_extend_passes_guarded_by_the_quorum(
    tmp_path: Path,
) -> None:
    cluster = await started(tmp_path, "QUORUM=majority\n")
    try:
        s1 = cluster.members["s1"].engine
        assert (await extend(s1, "web", "s2"))["warnings"] == []
        [shown] = guard.hierarchies(s1)
        assert (shown["guarded"], shown["guard"]) == (True, "quorum (majority)")
    finally:
        await cluster.close()


@pytest.mark.asyncio
async def test_removing_the_dependency_on_the_ip_resource_is_refused(
    pair: ComponentCluster,
) -> None:
    put(pair, "ip-198.18.0.50", "ip", ["s1", "s2"])
    put(pair, "db", "app", ["s1", "s2"], children=("ip-198.18.0.50",))
    s1 = pair.members["s1"].engine
    assert [h["guard"] for h in guard.hierarchies(s1)] == [
        "unique-address check",  # db > ip-198.18.0.50
        "not needed: on one server only",  # web
    ]
    before = catalog(pair)
    with pytest.raises(OpError) as refused:
        await undepend(s1, "db", "ip-198.18.0.50")
    assert refused.value.field == "dependency"
    assert refused.value.reason.startswith("db has no IP resource below it; ")
    assert "(keep db depending on an IP resource, " in refused.value.reason
    await pair.settle()
    assert catalog(pair) == before
    # A dependency added never exposes anything: a second IP resource, then the first goes.
    put(pair, "ip-198.18.0.51", "ip", ["s1", "s2"])
    assert (await depend(s1, "db", "ip-198.18.0.51"))["warnings"] == []
    assert (await undepend(s1, "db", "ip-198.18.0.50"))["warnings"] == []


@pytest.mark.asyncio
async def test_a_document_is_checked_as_the_catalog_it_would_leave(pair: ComponentCluster) -> None:
    put(pair, "ip-198.18.0.50", "ip", ["s1", "s2"])
    s1 = pair.members["s1"].engine
    with pytest.raises(OpError) as new:
        guard.refuse_applied(s1, {"shop": ("app", {"s1", "s2"})}, {"s2": ["shop"]}, [])
    assert new.value.field == "shop.children"
    assert "(list an IP resource in its children, " in new.value.reason
    with pytest.raises(OpError) as spread:
        guard.refuse_applied(s1, {}, {"s2": ["web"]}, [])
    assert spread.value.field == "web.children"
    assert (
        guard.refuse_applied(
            s1, {"shop": ("app", {"s1", "s2"})}, {"s2": ["shop"]}, [("shop", "ip-198.18.0.50")]
        )
        == []
    )


@pytest.mark.asyncio
async def test_a_hierarchy_left_unguarded_from_before_is_warned_of_once_at_start_up(
    pair: ComponentCluster,
) -> None:
    put(pair, "old", "app", ["s1", "s2"])  # extended before this version
    put(pair, "ip-198.18.0.50", "ip", ["s1", "s2"])
    put(pair, "shop", "app", ["s1", "s2"], children=("ip-198.18.0.50",))
    s1 = pair.members["s1"].engine
    assert guard.warn_at_start(s1) == 1
    assert pair.events("s1", "unguarded") == [
        "guarded by nothing on s1 and s2: with QUORUM=none and no IP resource below it, old "
        "may run on two servers at once if the comm paths are cut; nothing is taken down "
        "(make it depend on an IP resource, or use QUORUM=majority with a witness)"
    ]
    [old] = [h for h in guard.hierarchies(s1) if h["tag"] == "old"]
    assert old["guard"].endswith("(extended before UNGUARDED_APPS=refuse, or where it was allowed)")
    # It may stay, but not spread: nothing is taken down, and no third server is offered.
    assert pair.state("s1", "old") == "OSU"
