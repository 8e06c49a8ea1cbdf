"""The guard rule (model/guard.py): under QUORUM=none an application is kept from running
on two servers only by an IP resource below it, whose unique-address check refuses the
bring-up where the address still answers."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ipkeeper.model.guard import (
    NOTHING,
    ONE_SERVER,
    QUORUM,
    RUNS_NOTHING,
    UNIQUE_CHECK,
    GuardPolicy,
    Layout,
    guard_of,
    guarded,
    newly_exposed,
)
from ipkeeper.model.hierarchy import Hierarchy

TWO = frozenset({"s1", "s2"})
ONE = frozenset({"s1"})


def layout(
    kinds: dict[str, str],
    edges: list[tuple[str, str]] | None = None,
    servers: dict[str, frozenset[str]] | None = None,
) -> Layout:
    """Resources of `kinds` (each on s1 and s2 unless `servers` says) with `edges`."""
    where = servers if servers is not None else {r: TWO for r in kinds}
    return Layout(kinds, where, Hierarchy(edges or [], kinds))


def test_an_application_with_an_ip_resource_below_it_is_guarded() -> None:
    found = layout({"web": "app", "ip": "ip"}, [("web", "ip")])
    assert guarded(found.graph, found.kinds, "web")
    assert found.exposed() == {}


def test_an_ip_resource_further_down_guards_too_through_a_group_or_another_application() -> None:
    found = layout(
        {"web": "app", "db": "app", "vips": "group", "ip": "ip"},
        [("web", "db"), ("db", "vips"), ("vips", "ip")],
    )
    assert found.exposed() == {}


def test_an_application_only_hierarchy_is_unguarded_on_two_servers() -> None:
    found = layout({"web": "app", "db": "app"}, [("web", "db")])
    assert found.exposed() == {"web": TWO, "db": TWO}


def test_an_application_that_is_the_child_of_an_ip_resource_is_unguarded() -> None:
    # The child comes up first: the IP resource's check comes too late to stop it.
    found = layout({"ip": "ip", "web": "app"}, [("ip", "web")])
    assert found.exposed() == {"web": TWO}


def test_an_application_beside_an_ip_resource_in_one_hierarchy_is_unguarded() -> None:
    found = layout({"top": "app", "ip": "ip", "side": "app"}, [("top", "ip"), ("top", "side")])
    assert found.exposed() == {"side": TWO}


def test_ip_resources_and_groups_need_no_guard_and_one_server_is_never_exposed() -> None:
    assert layout({"ip": "ip", "g": "group"}, [("g", "ip")]).exposed() == {}
    assert layout({"web": "app"}, servers={"web": ONE}).exposed() == {}
    assert guarded(Hierarchy(), {"x": "some-future-kind"}, "x") is False


def test_an_extend_exposes_only_what_it_spreads() -> None:
    before = layout({"web": "app"}, servers={"web": ONE})
    assert newly_exposed(before, before.extended(["web"], "s2")) == {"web": TWO}
    legacy = layout({"old": "app"})  # extended before the check existed
    assert newly_exposed(legacy, legacy) == {}
    assert newly_exposed(legacy, legacy.extended(["old"], "s3")) == {"old": TWO | {"s3"}}


def test_removing_the_dependency_on_the_ip_resource_exposes_the_application() -> None:
    before = layout({"web": "app", "ip": "ip"}, [("web", "ip")])
    assert newly_exposed(before, before.with_edges(remove=[("web", "ip")])) == {"web": TWO}
    other = layout({"web": "app", "ip": "ip", "ip2": "ip"}, [("web", "ip"), ("web", "ip2")])
    assert newly_exposed(other, other.with_edges(remove=[("web", "ip")])) == {}


def test_new_resources_in_a_document_are_judged_with_their_children() -> None:
    before = layout({"ip": "ip"})
    bare = before.with_resources({"new:web": "app"}, {"new:web": TWO})
    assert newly_exposed(before, bare) == {"new:web": TWO}
    assert newly_exposed(before, bare.with_edges(add=[("new:web", "ip")])) == {}


KINDS = st.sampled_from(["app", "ip", "group", "app"])


@st.composite
def layouts(draw: st.DrawFn) -> Layout:
    names = [f"r{i}" for i in range(draw(st.integers(1, 7)))]
    kinds = {n: draw(KINDS) for n in names}
    servers = {
        n: frozenset(draw(st.sets(st.sampled_from(["s1", "s2", "s3"]), min_size=1))) for n in names
    }
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]  # acyclic by order
    edges = draw(st.lists(st.sampled_from(pairs), max_size=8)) if pairs else []
    return Layout(kinds, servers, Hierarchy(edges, kinds))


@given(layouts(), st.data())
def test_adding_a_dependency_never_exposes_anything(found: Layout, data: st.DataObject) -> None:
    names = sorted(found.kinds)
    parent = data.draw(st.sampled_from(names))
    child = data.draw(st.sampled_from(names))
    if parent != child and found.graph.cycle_with(parent, child) is None:
        assert newly_exposed(found, found.with_edges(add=[(parent, child)])) == {}


@given(layouts())
def test_what_is_exposed_runs_something_on_two_servers_with_no_ip_resource_below(
    found: Layout,
) -> None:
    for rid, where in found.exposed().items():
        assert found.kinds[rid] == "app" and len(where) > 1
        assert not any(found.kinds[d] == "ip" for d in found.graph.descendants(rid))


def test_what_status_says_guards_a_hierarchy() -> None:
    none, majority = GuardPolicy(), GuardPolicy(quorum="majority")
    bare = layout({"web": "app"})
    assert guard_of(bare, ["web"], majority).guard == QUORUM
    shown = guard_of(bare, ["web"], none)
    assert not shown.guarded and shown.unguarded == ("web",)
    assert shown.guard == (
        f"{NOTHING} (extended before UNGUARDED_APPS=refuse, or where it was allowed)"
    )
    allowed = guard_of(bare, ["web"], GuardPolicy(allow=True))
    assert allowed.guard == f"{NOTHING} (UNGUARDED_APPS=allow)"
    vip = layout({"web": "app", "ip": "ip"}, [("web", "ip")])
    assert guard_of(vip, ["web", "ip"], none) == guard_of(vip, ["ip", "web"], none)
    assert guard_of(vip, ["web", "ip"], none).guard == UNIQUE_CHECK
    unchecked = guard_of(vip, ["web", "ip"], GuardPolicy(unique_check=False))
    assert not unchecked.guarded and unchecked.guard == f"{NOTHING} (NOIPUNIQUE=1)"
    lone = layout({"web": "app"}, servers={"web": ONE})
    assert guard_of(lone, ["web"], none).guard == ONE_SERVER
    assert guard_of(layout({"g": "group"}), ["g"], none).guard == RUNS_NOTHING
