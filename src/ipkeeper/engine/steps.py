"""Bringing hierarchies up and down here, in dependency order and in batches.

A hierarchy comes up in layers: first every resource that needs nothing
else in it (its leaves), then the resources that need only those, and so
on. All the resources of one layer, across every hierarchy being brought up
together, go to their kits at once (a kit that can do many at once, as the
IP kit can, gets them in one call: one unique-address probe round, one
batch of netlink requests, one burst of announcements), and the outcome of
the whole layer is committed in one transaction. A failure stays within its
own hierarchy: what that hierarchy had brought up is undone, and the others
go on. Taking down is the same, top layer first.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ipkeeper.model.hierarchy import Hierarchy
from ipkeeper.model.states import KitResult, ResourceState
from ipkeeper.store.repo import ResourceRecord

if TYPE_CHECKING:
    from ipkeeper.engine.core import Engine


@dataclass(frozen=True)
class StepResult:
    """How a hierarchy operation ended: ok, or the resource that failed and why."""

    ok: bool
    reason: str
    failed: str | None = None  # resource id
    step: str | None = None


def layers(graph: Hierarchy, ids: Iterable[str]) -> list[list[str]]:
    """`ids` in bring-up layers: layer 0 needs nothing else of `ids`, layer n only layers < n."""
    wanted = set(ids)
    depth: dict[str, int] = {}

    def visit(node: str, path: frozenset[str]) -> int:
        if node in depth:
            return depth[node]
        below = [c for c in graph.children.get(node, ()) if c in wanted and c not in path]
        depth[node] = 1 + max((visit(c, path | {node}) for c in below), default=-1)
        return depth[node]

    for node in sorted(wanted):
        visit(node, frozenset())
    result: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for node in sorted(wanted):
        result[depth[node]].append(node)
    return result


@dataclass
class _Group:
    """One hierarchy being brought up: its layers, what came up so far, and its outcome."""

    why: str
    layers: list[list[str]]
    brought: list[list[ResourceRecord]] = field(default_factory=list)
    result: StepResult | None = None


async def bring_up_many(engine: Engine, groups: list[tuple[set[str], str]]) -> list[StepResult]:
    """Bring each (ids, why) in service here, children first, all of them together;
    a group that fails has what it brought up undone (see the module docstring)."""
    graph = engine.graph()
    work = [_Group(why, layers(graph, ids)) for ids, why in groups]
    depth = 0
    while any(g.result is None and depth < len(g.layers) for g in work):
        batch = _start_layer(engine, work, depth)
        results = await engine.act_many([rec for _, rec, _ in batch], "restore")
        failed = _record_layer(engine, work, batch, results)
        if failed:
            # Whatever the failed restores left behind.
            await engine.act_many(failed, "remove")
        await _undo([g for g in work if g.result is not None and not g.result.ok], engine)
        depth += 1
    return [g.result or StepResult(True, g.why) for g in work]


Batch = list[tuple[_Group, ResourceRecord, str]]  # group, resource, its pending marker


def _start_layer(engine: Engine, work: list[_Group], depth: int) -> Batch:
    """Mark every resource of layer `depth` of the groups still going as coming up."""
    batch: Batch = []
    with engine.repo.db.transaction():
        for group in work:
            if group.result is not None or depth >= len(group.layers):
                continue
            for rid in group.layers[depth]:
                rec, current = engine.repo.resource(rid), engine.repo.local_state(rid)
                if rec is None or current is None:
                    continue
                if current.state.in_service and current.pending is None:
                    continue
                marker = "create" if current.pending == "create" else "restore"
                engine.repo.set_state(rid, current.state, current.reason, pending=marker)
                batch.append((group, rec, marker))
    return batch


def _record_layer(
    engine: Engine, work: list[_Group], batch: Batch, results: list[KitResult]
) -> list[ResourceRecord]:
    """Commit a layer's outcome (one transaction); the resources whose restore failed
    for a reason of this server's own (to be cleaned up)."""
    failed: list[ResourceRecord] = []
    with engine.repo.db.transaction():
        for group in work:
            group.brought.append([])
        for (group, rec, marker), result in zip(batch, results, strict=True):
            if result.ok:
                engine.record(
                    rec,
                    engine.in_service_state(rec),
                    "restore",
                    f"{group.why}: {result.reason}",
                    timings=result.timings,
                )
                group.brought[-1].append(rec)
                continue
            # Nothing is wrong here when someone else answers for the address.
            unique = result.step == "unique"
            state = ResourceState.OSU if unique else ResourceState.OSF
            # A creation that failed is deleted (at once, or at the next start).
            after = "delete" if marker == "create" else None
            engine.record(
                rec, state, "not-taken" if unique else "restore-failed",
                f"{group.why}: {result.reason}", pending=after, step=result.step,
            )  # fmt: skip
            if group.result is None:
                group.result = StepResult(False, result.reason, failed=rec.id, step=result.step)
            # A creation never removes what it did not add (an address already there).
            if not unique and not (marker == "create" and result.details.get("adopted")):
                failed.append(rec)
    return failed


async def _undo(groups: list[_Group], engine: Engine) -> None:
    """Take down what failed groups brought up, last layer first."""
    for group in groups:
        assert group.result is not None and group.result.failed is not None
        rec = engine.repo.resource(group.result.failed)
        culprit = rec.tag_on(engine.server) if rec else group.result.failed
        while group.brought:
            layer = group.brought.pop()
            if not layer:
                continue
            with engine.repo.db.transaction():
                for done in layer:
                    engine.repo.set_state(
                        done.id, engine.in_service_state(done), "being undone", pending="remove"
                    )
            undone = await engine.act_many(layer, "remove")
            with engine.repo.db.transaction():
                for done, undo in zip(layer, undone, strict=True):
                    state = ResourceState.OSU if undo.ok else ResourceState.OSF
                    engine.record(
                        done, state, "remove", f"undone because {culprit} failed: {undo.reason}"
                    )


async def take_down(
    engine: Engine, ids: set[str], why: str, final: ResourceState = ResourceState.OSU
) -> StepResult:
    """Take `ids` out of service here, parents first, a layer at a time; stops at the
    first layer where something could not be taken down."""
    for layer in reversed(layers(engine.graph(), ids)):
        batch: list[tuple[ResourceRecord, str]] = []
        with engine.repo.db.transaction():
            for rid in layer:
                rec, current = engine.repo.resource(rid), engine.repo.local_state(rid)
                if rec is None or current is None:
                    continue
                if not current.state.in_service and current.pending is None:
                    if final is ResourceState.OSF and current.state is not ResourceState.OSF:
                        engine.record(rec, final, "state", why)
                    continue
                # A deletion stays marked until the rows are gone, so a crash finishes it.
                marker = "delete" if current.pending == "delete" else "remove"
                engine.repo.set_state(rid, current.state, current.reason, pending=marker)
                batch.append((rec, marker))
        results = await engine.act_many([rec for rec, _ in batch], "remove")
        first_failure: StepResult | None = None
        with engine.repo.db.transaction():
            for (rec, marker), result in zip(batch, results, strict=True):
                if not result.ok:
                    engine.record(
                        rec, ResourceState.OSF, "remove-failed", f"{why}: {result.reason}"
                    )
                    first_failure = first_failure or StepResult(
                        False, result.reason, failed=rec.id, step=result.step
                    )
                    continue
                kept = marker if marker == "delete" else None
                engine.record(rec, final, "remove", f"{why}: {result.reason}", pending=kept)
        if first_failure is not None:
            return first_failure
    return StepResult(True, why)
