"""Moving hierarchies across the cluster: in service on a server, out of service,
switchback, and deletion everywhere (R20, R23, R24).

Each server brings up and takes down only its own instances; an operation
started here asks the other servers through `engine.peers`. A switchover
finishes the take-down on the old server before the bring-up on the new one.
"""

from __future__ import annotations

from typing import Any

from ipkeeper.engine.admin import finish_delete, resolve
from ipkeeper.engine.core import Engine, StepResult
from ipkeeper.engine.create import check_known_server
from ipkeeper.engine.errors import OpError, conflict
from ipkeeper.engine.placement import hosts, placement, retire_dead_holders, state_on
from ipkeeper.model.states import ResourceState


async def hierarchy_up(engine: Engine, ids: set[str], why: str) -> dict[str, Any]:
    """Bring `ids` in service on this server (children first); OpError when it fails."""
    if not engine.peers.has_quorum():
        raise OpError(
            "quorum",
            f"{engine.server} is in a minority (QUORUM=majority): it brings nothing up (R32)",
            status=503,
        )
    first = next(iter(ids))
    async with engine.locks.hold(lambda: engine.hierarchy_of(first) | ids):
        engine.handed_over.discard(ids)
        engine.withdrawn.discard(ids)
        result = await engine.bring_up(ids, why)
    return _outcome(engine, ids, result, "restore")


async def bring_up_many_here(
    engine: Engine, groups: list[tuple[set[str], str]]
) -> list[StepResult]:
    """Bring several hierarchies in service here together (a takeover of what a dead
    peer held); each one's outcome. Nothing comes up in a minority (R32)."""
    if not engine.peers.has_quorum():
        return [StepResult(False, "in a minority: nothing is brought up (R32)")] * len(groups)
    everything: set[str] = set().union(*(ids for ids, _ in groups))

    def members() -> set[str]:
        hierarchies = {engine.view.members_of(r) for r in everything}
        return everything.union(*hierarchies)

    async with engine.locks.hold(members):
        engine.handed_over.discard(everything)
        engine.withdrawn.discard(everything)
        return await engine.bring_up_many(groups)


async def hierarchy_down(
    engine: Engine, ids: set[str], why: str, withdraw: bool = False
) -> dict[str, Any]:
    """Take `ids` out of service on this server (parents first); OpError when it fails.
    With `withdraw` (an administrator's out-of-service) it is remembered, so that no
    takeover brings it back, even after a restart."""
    async with engine.locks.hold(lambda: ids):
        engine.handed_over.discard(ids)  # nobody is to take it over now
        if withdraw:
            engine.withdrawn.add(ids)
        retire_dead_holders(engine, ids)
        result = await engine.take_down(ids, why)
    return _outcome(engine, ids, result, "remove")


def _outcome(engine: Engine, ids: set[str], result: StepResult, action: str) -> dict[str, Any]:
    """The reply for a bring-up or take-down here; OpError naming what failed."""
    if not result.ok:
        raise OpError(
            action,
            f"{engine.tag(result.failed or next(iter(ids)))} on {engine.server}: {result.reason}",
        )
    return {"server": engine.server, "ok": True}


async def up_on(engine: Engine, server: str, ids: set[str], why: str) -> None:
    """Bring `ids` in service on `server` (this one or a peer)."""
    if server == engine.server:
        await hierarchy_up(engine, ids, why)
    else:
        await engine.peers.request(
            server, "hierarchy.up", {"ids": sorted(ids), "why": why}, timeout=600
        )


async def down_on(
    engine: Engine, server: str, ids: set[str], why: str, withdraw: bool = False
) -> None:
    """Take `ids` out of service on `server` (this one or a peer); see hierarchy_down."""
    if server == engine.server:
        await hierarchy_down(engine, ids, why, withdraw)
    else:
        params = {"ids": sorted(ids), "why": why, "withdraw": withdraw}
        await engine.peers.request(server, "hierarchy.down", params, timeout=600)


def _state_of(engine: Engine, rid: str) -> str | None:
    state = engine.state(rid)
    return state.value if state else None


async def in_service(engine: Engine, tag: str, server: str | None = None) -> dict[str, Any]:
    """Bring the hierarchy of `tag` in service on `server`, moving it there if it is elsewhere (R24)."""
    rec = resolve(engine, tag)
    target = server or engine.server
    check_known_server(engine, "server", target)
    ids = engine.hierarchy_of(rec.id)
    where = hosts(engine, ids)
    if target not in where:
        missing = sorted(
            engine.tag(r)
            for r in ids
            if (x := engine.repo.resource(r)) and x.instance(target) is None
        )
        raise conflict(
            "server",
            f"the hierarchy of {tag} is not extended to {target} (missing: {', '.join(missing) or tag})",
        )
    if target not in engine.peers.alive():
        raise OpError("server", f"{target} is not reachable (every comm path is down)", status=503)
    if _already_there(engine, ids, target):
        note = f"the hierarchy of {tag} is already in service on {target}: nothing was moved"
        return {"tag": tag, "server": target, "state": "ISP", "moved_from": [], "notes": [note]}
    if target == engine.server:
        moved = await move_here(engine, rec.id)
    else:
        # The target runs the move itself: should this server die half-way,
        # the move still finishes (or is undone) where it matters.
        engine.events.add("admin", f"in service requested on {target}", tag=tag)
        moved = await engine.peers.request(target, "hierarchy.move", {"id": rec.id}, timeout=600)
    return {"tag": tag, "server": target, "state": "ISP", "moved_from": moved["moved_from"]}


def _already_there(engine: Engine, ids: set[str], target: str) -> bool:
    """True when every member is ISP on `target` and nothing of it runs elsewhere."""
    now = placement(engine, ids)
    return now.holders == {target} and all(
        state_on(engine, target, rid)[0] is ResourceState.ISP for rid in ids
    )


async def move_here(engine: Engine, resource_id: str) -> dict[str, Any]:
    """Bring the hierarchy of `resource_id` in service on this server, taking it down
    wherever else it is first; when that fails, put it back (R24)."""
    target, tag = engine.server, engine.tag(resource_id)
    ids = engine.hierarchy_of(resource_id)
    now = placement(engine, ids)
    engine.events.add("admin", f"in service requested on {target}", tag=tag)
    for holder in sorted(now.holders - {target}):
        await down_on(engine, holder, ids, f"moving to {target} (administrator)")
    try:
        await hierarchy_up(engine, ids, f"in service on {target} (administrator)")
    except OpError as exc:
        back_on = None
        for holder in sorted(now.holders - {target}):
            try:
                await up_on(engine, holder, ids, f"back on {holder}: bring-up on {target} failed")
                back_on = holder
            except OpError as back:
                engine.events.add(
                    "admin", f"could not bring it back on {holder}: {back.reason}", tag=tag
                )
        if now.holders - {target} and back_on is None:
            await place_elsewhere(engine, ids, now.holders | {target}, tag)
        raise exc
    return {"server": target, "moved_from": sorted(now.holders - {target})}


async def out_of_service(engine: Engine, tag: str) -> dict[str, Any]:
    """Take the hierarchy of `tag` out of service wherever it is (R24)."""
    rec = resolve(engine, tag)
    ids = engine.hierarchy_of(rec.id)
    now = placement(engine, ids)
    engine.events.add("admin", "out of service requested", tag=tag)
    # Every live server where it is extended, not only the holders: one that
    # gave it up after a failure must stop asking the others to take it over,
    # and every one must stop counting a dead server's last report as a
    # reason to take it over (the take-down is a no-op where it is not up).
    alive = engine.peers.alive()
    here = {engine.server} if engine.repo.local_state(rec.id) else set()
    first = (now.holders | now.abandoned | here) & alive
    for server in sorted(first):
        await down_on(engine, server, ids, "out of service (administrator)", withdraw=True)
    for server in sorted((set(now.priorities) & alive) - first):
        try:
            await down_on(engine, server, ids, "out of service (administrator)", withdraw=True)
        except OpError as exc:  # it holds nothing; it only could not be told
            engine.events.add("admin", f"{server} not told: {exc.reason}", tag=tag)
    return {
        "tag": tag,
        "state": _state_of(engine, rec.id) or "OSU",
        "taken_down_on": sorted(now.holders),
    }


async def delete(engine: Engine, tag: str) -> dict[str, Any]:
    """Delete `tag` and what depends on it from every server, out of service first (R20)."""
    rec = resolve(engine, tag)
    async with engine.catalog:
        ids = engine.hierarchy_of(rec.id)
        doomed = {rec.id} | engine.graph().ancestors(rec.id)
        tags = sorted(engine.tag(r) for r in doomed)
        engine.events.add("admin", f"delete requested: {', '.join(tags)}", tag=tag)
        for holder in sorted(placement(engine, ids).holders - {engine.server}):
            await down_on(engine, holder, doomed, "being deleted")
        versions = {rid: (r.version if (r := engine.repo.resource(rid)) else 0) for rid in doomed}
        names = {rid: engine.tag(rid) for rid in doomed}
        async with engine.locks.hold(lambda: engine.hierarchy_of(rec.id)):
            with engine.repo.db.transaction():
                for rid in doomed:
                    current = engine.repo.local_state(rid)
                    if current is not None:
                        engine.repo.set_state(rid, current.state, current.reason, pending="delete")
            if not await finish_delete(engine, doomed):
                raise OpError("remove", "could not take everything out of service; see events")
        for rid in doomed:
            engine.peers.publish_deletion(rid, versions[rid] + 1, names[rid])
    return {"deleted": tags}


async def switch_back(engine: Engine, ids: set[str], better: str) -> None:
    """Automatic switchback (R23): move a hierarchy held here to `better`, which rejoined."""
    why = f"automatic switchback to {better} (better priority, rejoined)"
    tag = engine.tag(min(ids))
    engine.events.add("switchback", why, tag=tag)
    await hierarchy_down(engine, ids, why)
    try:
        await up_on(engine, better, ids, why)
    except OpError as exc:
        engine.events.add(
            "switchback", f"failed on {better}: {exc.reason}; bringing it back here", tag=tag
        )
        try:
            await hierarchy_up(engine, ids, f"back here: switchback to {better} failed")
        except OpError as back:
            engine.events.add("switchback", f"could not bring it back here: {back.reason}", tag=tag)
            await place_elsewhere(engine, ids, {better, engine.server}, tag)


async def place_elsewhere(
    engine: Engine, ids: set[str], tried: set[str] | frozenset[str], tag: str
) -> str | None:
    """After a move and its undo both failed, so that the hierarchy is not left on
    no server: bring it up on the next live server by priority (servers where
    it failed before come last); the server that took it, or None."""
    where = placement(engine, ids)
    alive = engine.peers.alive()
    for server in sorted(
        (s for s in where.priorities if s in alive and s not in tried),
        key=lambda s: (s in where.failed, where.priorities[s], s),
    ):
        why = f"placed on {server} (priority {where.priorities[server]}): the move and its undo failed"
        engine.events.add("failover", why, tag=tag)
        try:
            await up_on(engine, server, ids, why)
            return server
        except OpError as exc:
            engine.events.add("failover", f"{server} could not take it: {exc.reason}", tag=tag)
    engine.events.add("failover", "no live server could take it: it is out of service", tag=tag)
    return None
