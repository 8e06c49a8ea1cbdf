"""Dependency hierarchies (R21): a DAG of parent -> child, pure.

A parent needs its children: children are brought in service before
parents, parents are taken out of service before children. A hierarchy is a
connected set of resources; it moves between servers as one unit.
"""

from __future__ import annotations

from collections.abc import Iterable


class Hierarchy:
    """The dependency graph over resource ids."""

    def __init__(self, edges: Iterable[tuple[str, str]] = (), nodes: Iterable[str] = ()) -> None:
        self.children: dict[str, set[str]] = {}
        self.parents: dict[str, set[str]] = {}
        for node in nodes:
            self._add_node(node)
        for parent, child in edges:
            self._add_node(parent)
            self._add_node(child)
            self.children[parent].add(child)
            self.parents[child].add(parent)

    def _add_node(self, node: str) -> None:
        self.children.setdefault(node, set())
        self.parents.setdefault(node, set())

    def descendants(self, node: str) -> set[str]:
        """Everything `node` needs, directly or not."""
        return self._walk(node, self.children)

    def ancestors(self, node: str) -> set[str]:
        """Everything that needs `node`, directly or not."""
        return self._walk(node, self.parents)

    @staticmethod
    def _walk(node: str, links: dict[str, set[str]]) -> set[str]:
        seen: set[str] = set()
        stack = list(links.get(node, ()))
        while stack:
            current = stack.pop()
            if current not in seen:
                seen.add(current)
                stack.extend(links.get(current, ()))
        return seen

    def cycle_with(self, parent: str, child: str) -> list[str] | None:
        """The cycle that parent -> child would close (as a path), or None."""
        if parent == child:
            return [parent, parent]
        if parent not in self.descendants(child):
            return None
        path = self._path(child, parent)
        return [parent, *path]

    def _path(self, start: str, goal: str) -> list[str]:
        stack: list[tuple[str, list[str]]] = [(start, [start])]
        seen: set[str] = set()
        while stack:
            node, path = stack.pop()
            if node == goal:
                return path
            if node in seen:
                continue
            seen.add(node)
            stack.extend((c, [*path, c]) for c in sorted(self.children.get(node, ())))
        return [start, goal]

    def find_cycle(self) -> list[str] | None:
        """A cycle of the graph as a path (first node repeated at the end), or None."""
        state: dict[str, int] = {}  # 1: on the current path, 2: done
        for start in sorted(self.children):
            if state.get(start):
                continue
            stack: list[tuple[str, list[str]]] = [(start, sorted(self.children[start]))]
            path = [start]
            state[start] = 1
            while stack:
                node, todo = stack[-1]
                if not todo:
                    state[node] = 2
                    stack.pop()
                    path.pop()
                    continue
                child = todo.pop(0)
                if state.get(child) == 1:
                    return [*path[path.index(child) :], child]
                if not state.get(child):
                    state[child] = 1
                    path.append(child)
                    stack.append((child, sorted(self.children.get(child, ()))))
        return None

    def component(self, node: str) -> set[str]:
        """The whole hierarchy `node` belongs to (ignoring edge direction)."""
        seen = {node}
        stack = [node]
        while stack:
            current = stack.pop()
            for other in self.children.get(current, set()) | self.parents.get(current, set()):
                if other not in seen:
                    seen.add(other)
                    stack.append(other)
        return seen

    def components(self) -> list[set[str]]:
        """Every hierarchy, each as a set of resource ids."""
        done: set[str] = set()
        result = []
        for node in sorted(self.children):
            if node not in done:
                comp = self.component(node)
                done |= comp
                result.append(comp)
        return result

    def up_order(self, nodes: Iterable[str]) -> list[str]:
        """`nodes` ordered children first (the bring-up order)."""
        wanted = set(nodes)
        order: list[str] = []
        placed: set[str] = set()

        def visit(node: str) -> None:
            if node in placed:
                return
            placed.add(node)
            for child in sorted(self.children.get(node, ())):
                if child in wanted:
                    visit(child)
            order.append(node)

        for node in sorted(wanted):
            visit(node)
        return order

    def down_order(self, nodes: Iterable[str]) -> list[str]:
        """`nodes` ordered parents first (the take-down order)."""
        return list(reversed(self.up_order(nodes)))

    def roots(self, nodes: Iterable[str]) -> list[str]:
        """The resources in `nodes` that no other resource in `nodes` needs."""
        wanted = set(nodes)
        return sorted(n for n in wanted if not (self.parents.get(n, set()) & wanted))
