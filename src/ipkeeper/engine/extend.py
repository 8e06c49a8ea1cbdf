"""Extending a hierarchy to another server and unextending it (R18, R19).

Extend runs on the template server (where the hierarchy is in service): the
target checks what it is offered (tag free, priority free, the interface
valid there by R3, the application's programs present and safe:
extendcheck.py) before anything is stored, then every server learns the new
instances. Each resource of the hierarchy gets its own interface and tag on
the target, asked for or by default (extendplan.py), and a dry run reports
them all before anything is done.
"""

from __future__ import annotations

from typing import Any

from ipkeeper.engine.admin import resolve
from ipkeeper.engine.core import Engine
from ipkeeper.engine.create import check_known_server, check_priority, check_switchback
from ipkeeper.engine.errors import OpError, conflict
from ipkeeper.engine.extendplan import Answer, answers, report, summary
from ipkeeper.engine.guard import layout, refuse_exposure
from ipkeeper.engine.placement import placement, state_on
from ipkeeper.kits.ip.params import IPSpec, ParamError, check_tag
from ipkeeper.store.repo import InstanceRecord, ResourceRecord

DEFAULT_TARGET_PRIORITY = 10
PUSH_CHUNK = 500  # definitions per catalog push, well under a frame's 1 MiB


def _item(
    engine: Engine, rid: str, target: str, priority: int, tag: str, interface: str | None
) -> dict[str, Any]:
    rec = engine.repo.resource(rid)
    assert rec is not None
    local = rec.instance(engine.server)
    assert local is not None
    used = {i.priority: i.server for i in rec.instances}
    if priority in used:
        raise conflict(
            "target-priority",
            f"{priority} is already the priority of {used[priority]} for {local.tag}",
        )
    props = dict(local.props)
    template = props.pop("interface", None) if rec.kind == "ip" else None
    return {
        "id": rid,
        "kind": rec.kind,
        "tag": tag,
        "priority": priority,
        "props": props,
        "interface": interface,
        # The target's default: the same interface name where it is valid there (R3).
        "template_interface": template,
    }


def _check_arguments(
    engine: Engine,
    tag: str,
    target: str,
    target_priority: int,
    template_priority: int | None,
    target_tag: str | None,
    switchback: str | None,
) -> None:
    rec = resolve(engine, tag)
    check_known_server(engine, "target", target)
    check_priority("target-priority", target_priority)
    if template_priority is not None:
        check_priority("template-priority", template_priority)
        if len(rec.instances) > 1:
            raise OpError("template-priority", "can only be set at the first extend")
        if template_priority == target_priority:
            raise OpError("target-priority", "must differ from the template priority")
    if switchback is not None:
        check_switchback(switchback)
    if target == engine.server:
        raise OpError("target", f"{target} is this server, the template")
    state = engine.state(rec.id)
    if state is None or not state.in_service:
        raise conflict(
            "tag", f"{tag} must be in service on this server (the template) to be extended from it"
        )
    if target_tag is not None:
        try:
            check_tag(target_tag)
        except ParamError as exc:
            raise OpError("target-tag", exc.reason) from None


def _offer(
    engine: Engine, root: str, target: str, priority: int, chosen: dict[str, Answer]
) -> list[dict[str, Any]]:
    """The instances to create on `target`: `root` and what it depends on, children first,
    each with its answer (`chosen`: interface and tag by resource id)."""
    members = {root} | engine.graph().descendants(root)
    items = []
    for rid in engine.graph().up_order(members):
        found = engine.repo.resource(rid)
        if found is None or found.instance(target) is not None:
            continue
        mine = found.instance(engine.server)
        if mine is None:
            raise conflict("tag", f"{found.tag_on(engine.server)} is not extended to this server")
        answer = chosen.get(rid, Answer())
        name = answer.target_tag or mine.tag
        items.append(_item(engine, rid, target, priority, name, answer.interface))
    return items


def _guard(engine: Engine, root: str, target: str) -> list[str]:
    """engine/guard.py's refusal (or, under UNGUARDED_APPS=allow, warnings) for extending
    `root` and what it depends on to `target`."""
    members = {root} | engine.graph().descendants(root)
    return refuse_exposure(engine, "target", layout(engine).extended(members, target))


async def _checked_offer(
    engine: Engine, tag: str, root: str, target: str, priority: int, chosen: dict[str, Answer]
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """The offer and the target's answer to it: each item's checked properties, the
    valid choices there and the target's warnings, by resource id."""
    items = _offer(engine, root, target, priority, chosen)
    if not items:
        raise conflict("target", f"{tag} is already extended to {target}")
    answer = await engine.peers.request(target, "extend.check", {"items": items})
    return items, {i["id"]: i for i in answer["items"]}


def _store(
    engine: Engine,
    target: str,
    items: list[dict[str, Any]],
    checked: dict[str, dict[str, Any]],
    template_priority: int | None,
    switchback: str | None,
) -> None:
    with engine.repo.db.transaction():
        for item in items:
            rid = item["id"]
            found = engine.repo.resource(rid)
            mine = found.instance(engine.server) if found else None
            assert mine is not None
            if template_priority is not None:
                engine.repo.put_instance(
                    InstanceRecord(rid, mine.server, mine.tag, template_priority, mine.props)
                )
            engine.repo.put_instance(
                InstanceRecord(rid, target, item["tag"], item["priority"], checked[rid])
            )
            if switchback is not None:
                engine.repo.set_switchback(rid, switchback)
            engine.repo.bump_version(rid)


async def extend(
    engine: Engine,
    tag: str,
    target: str,
    target_priority: int = DEFAULT_TARGET_PRIORITY,
    template_priority: int | None = None,
    interface: str | None = None,
    target_tag: str | None = None,
    switchback: str | None = None,
    resources: list[dict[str, Any]] | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Extend `tag` and everything it depends on from this server to `target` (R18),
    each resource with its answer (`resources`: tag, interface, target_tag; the root's
    also as `interface` and `target_tag`) or its default; `dry_run`: only say what
    would be done (extendplan.py's report), which the target has checked."""
    _check_arguments(
        engine, tag, target, target_priority, template_priority, target_tag, switchback
    )
    rec = resolve(engine, tag)
    chosen = answers(engine, rec.id, interface, target_tag, resources or [])
    if dry_run:
        unguarded = _guard(engine, rec.id, target)
        items, checked = await _checked_offer(engine, tag, rec.id, target, target_priority, chosen)
        planned = report(engine, tag, target, target_priority, items, checked, dry_run=True)
        planned["warnings"] = [*planned["warnings"], *unguarded]
        return planned
    async with engine.catalog:
        unguarded = _guard(engine, rec.id, target)  # before anything is asked of the target
        items, checked = await _checked_offer(engine, tag, rec.id, target, target_priority, chosen)
        props = {rid: c["props"] for rid, c in checked.items()}
        _store(engine, target, items, props, template_priority, switchback)
        ids = [i["id"] for i in items]
        await engine.peers.push_catalog(target, ids)
        engine.peers.publish_catalog(ids)
        await _seed_ping_lists(engine, target, ids)
    done = report(engine, tag, target, target_priority, items, checked, dry_run=False)
    done["warnings"] = [*done["warnings"], *unguarded]
    engine.events.add(
        "admin",
        f"extended to {target} with priority {target_priority}: {summary(done['resources'])}",
        tag=tag,
        warnings=done["warnings"],
    )
    return done


async def extend_items(engine: Engine, target: str, wanted: list[tuple[str, int]]) -> list[str]:
    """Extend many resources at once to `target`, each (tag, priority) with its own
    priority and the interface the target chooses (apply's batched extend): one
    check on the target, one transaction, one push. The tags extended."""
    if target == engine.server or not wanted:
        return []
    items = []
    for tag, priority in wanted:
        rec = resolve(engine, tag)
        if rec.instance(target) is None:
            items.append(_item(engine, rec.id, target, priority, tag, None))
    if not items:
        return []
    answer = await engine.peers.request(target, "extend.check", {"items": items}, timeout=300)
    _store(engine, target, items, {i["id"]: i["props"] for i in answer["items"]}, None, None)
    ids = [i["id"] for i in items]
    for start in range(0, len(ids), PUSH_CHUNK):
        await engine.peers.push_catalog(target, ids[start : start + PUSH_CHUNK])
    await _seed_ping_lists(engine, target, ids)
    tags = [i["tag"] for i in items]
    engine.events.add("admin", f"extended {len(tags)} resources to {target}")
    return tags


async def extend_from_holder(engine: Engine, tag: str, **options: Any) -> dict[str, Any]:
    """Extend `tag` from wherever it is in service (its template), whichever server was asked."""
    rec = resolve(engine, tag)
    state = engine.state(rec.id)
    if state is None or not state.in_service:
        holders = sorted(placement(engine, engine.hierarchy_of(rec.id)).holders - {engine.server})
        if holders:
            return await engine.peers.request(
                holders[0], "extend", {"tag": tag, **options}, timeout=120
            )
    return await extend(engine, tag, **options)


async def _seed_ping_lists(engine: Engine, target: str, ids: list[str]) -> None:
    """R13: the template's ping list for each subnet goes to the target, unless it has one."""
    subnets = set()
    for rid in ids:
        rec = engine.repo.resource(rid)
        mine = rec.instance(engine.server) if rec else None
        if rec is not None and mine is not None and rec.kind == "ip":
            subnets.add(str(IPSpec.from_props(mine.props).network))
    for subnet in sorted(subnets):
        addresses = engine.repo.ping_list(subnet)
        if addresses:
            await engine.peers.request(
                target, "pinglist.seed", {"subnet": subnet, "addresses": addresses}
            )


def _removable(engine: Engine, tag: str, server: str, ids: set[str]) -> list[ResourceRecord]:
    """The members of a hierarchy extended to `server`, checked as removable from it (R19)."""
    members = [r for rid in ids if (r := engine.repo.resource(rid)) and r.instance(server)]
    if not members:
        raise conflict("server", f"{tag} is not extended to {server}")
    for member in members:
        state, pending = state_on(engine, server, member.id)
        if (state is not None and state.in_service) or pending:
            raise conflict(
                "server",
                f"{member.tag_on(server)} is in service on {server}; move it or take it out of service first",
            )
        if len(member.instances) == 1:
            raise conflict(
                "server",
                f"{server} holds the only instance of {member.tag_on(server)}; delete it instead",
            )
    return members


async def unextend(engine: Engine, tag: str, server: str) -> dict[str, Any]:
    """Remove the hierarchy of `tag` from `server`; refused where it is in service (R19)."""
    rec = resolve(engine, tag)
    _removable(engine, tag, server, engine.hierarchy_of(rec.id))  # refuse early, before waiting
    async with engine.catalog, engine.locks.hold(lambda: engine.hierarchy_of(rec.id)) as ids:
        members = _removable(engine, tag, server, ids)  # nothing moved meanwhile
        with engine.repo.db.transaction():
            for member in members:
                engine.repo.remove_instance(member.id, server)
                if server == engine.server:
                    engine.repo.drop_state(member.id)
                engine.repo.bump_version(member.id)
        ids_changed = [m.id for m in members]
        if server != engine.server and server in engine.peers.alive():
            await engine.peers.push_catalog(server, ids_changed)
        engine.peers.publish_catalog(ids_changed)
    tags = sorted(m.tag_on(server) for m in members)
    engine.events.add("admin", f"unextended from {server}: {', '.join(tags)}", tag=tag)
    return {"tag": tag, "server": server, "unextended": tags}
