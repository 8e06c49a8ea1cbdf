"""Dependency hierarchies (R21): cycles, orders, components."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ipkeeper.model.hierarchy import Hierarchy

#   app -> ip1, app -> fs, fs -> ip1 ; db -> ip2 (a second hierarchy); lone
EDGES = [("app", "ip1"), ("app", "fs"), ("fs", "ip1"), ("db", "ip2")]


def test_up_order_brings_children_first_and_down_order_parents_first() -> None:
    graph = Hierarchy(EDGES)
    up = graph.up_order({"app", "fs", "ip1"})
    assert up.index("ip1") < up.index("fs") < up.index("app")
    assert graph.down_order({"app", "fs", "ip1"}) == list(reversed(up))


def test_components_are_whole_hierarchies() -> None:
    graph = Hierarchy(EDGES, nodes=["lone"])
    assert graph.component("ip1") == {"app", "fs", "ip1"}
    assert sorted(map(sorted, graph.components())) == [
        ["app", "fs", "ip1"],
        ["db", "ip2"],
        ["lone"],
    ]
    assert graph.ancestors("ip1") == {"app", "fs"}
    assert graph.descendants("app") == {"fs", "ip1"}
    assert graph.roots({"app", "fs", "ip1"}) == ["app"]


def test_cycles_are_found_with_their_path() -> None:
    graph = Hierarchy(EDGES)
    assert graph.cycle_with("ip1", "app") == ["ip1", "app", "fs", "ip1"] or graph.cycle_with(
        "ip1", "app"
    ) == ["ip1", "app", "ip1"]
    assert graph.cycle_with("app", "app") == ["app", "app"]
    assert graph.cycle_with("db", "ip1") is None


@given(st.lists(st.tuples(st.integers(0, 7), st.integers(0, 7)), max_size=20))
def test_refusing_cycles_always_leaves_a_dag_whose_order_respects_every_edge(pairs: list) -> None:
    graph = Hierarchy()
    edges = []
    for a, b in pairs:
        parent, child = f"r{a}", f"r{b}"
        if graph.cycle_with(parent, child) is None:
            edges.append((parent, child))
            graph = Hierarchy(edges)
    order = graph.up_order(graph.children)
    position = {node: i for i, node in enumerate(order)}
    assert all(position[c] < position[p] for p, c in edges)
