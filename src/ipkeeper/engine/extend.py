"""Extending a hierarchy to another server and unextending it (R18, R19).

Extend runs on the template server (where the hierarchy is in service): the
target checks what it is offered (tag free, priority free, the interface
valid there by R3, the application's programs present and safe) before
anything is stored, then every server learns the new instances.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ipkeeper.engine.addresses import REASON, own_interface
from ipkeeper.engine.admin import resolve
from ipkeeper.engine.core import Engine
from ipkeeper.engine.create import check_priority, check_switchback, used_by
from ipkeeper.engine.errors import OpError, conflict
from ipkeeper.engine.placement import placement, state_on
from ipkeeper.kits.app.kit import validate_app
from ipkeeper.kits.ip.interfaces import choose
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
    if rec.kind == "ip":
        props.pop("interface", None)
    return {
        "id": rid,
        "kind": rec.kind,
        "tag": tag,
        "priority": priority,
        "props": props,
        "interface": interface,
    }


def check_known_server(engine: Engine, field: str, server: str) -> None:
    """Refuse a server name that is not in this cluster's configuration, naming it."""
    names = [s["name"] for s in engine.peers.servers()]
    if server not in names:
        raise OpError(
            field,
            f"{server} is not a server of this cluster (servers: {', '.join(names)})",
            status=404,
        )


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
    engine: Engine,
    root: str,
    target: str,
    priority: int,
    target_tag: str | None,
    interface: str | None,
) -> list[dict[str, Any]]:
    """The instances to create on `target`: `root` and what it depends on, children first."""
    members = {root} | engine.graph().descendants(root)
    items = []
    for rid in engine.graph().up_order(members):
        found = engine.repo.resource(rid)
        if found is None or found.instance(target) is not None:
            continue
        mine = found.instance(engine.server)
        if mine is None:
            raise conflict("tag", f"{found.tag_on(engine.server)} is not extended to this server")
        name = target_tag if rid == root and target_tag else mine.tag
        items.append(_item(engine, rid, target, priority, name, interface if rid == root else None))
    return items


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
) -> dict[str, Any]:
    """Extend `tag` and everything it depends on from this server to `target` (R18)."""
    _check_arguments(
        engine, tag, target, target_priority, template_priority, target_tag, switchback
    )
    rec = resolve(engine, tag)
    async with engine.catalog:
        items = _offer(engine, rec.id, target, target_priority, target_tag, interface)
        if not items:
            raise conflict("target", f"{tag} is already extended to {target}")
        answer = await engine.peers.request(target, "extend.check", {"items": items})
        checked = {i["id"]: i["props"] for i in answer["items"]}
        _store(engine, target, items, checked, template_priority, switchback)
        ids = [i["id"] for i in items]
        await engine.peers.push_catalog(target, ids)
        engine.peers.publish_catalog(ids)
        await _seed_ping_lists(engine, target, ids)
    tags = [engine.tag(i) for i in ids]
    engine.events.add(
        "admin", f"extended to {target} with priority {target_priority}: {', '.join(tags)}", tag=tag
    )
    return {"tag": tag, "target": target, "extended": tags, "target_priority": target_priority}


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
    checked = {i["id"]: i["props"] for i in answer["items"]}
    _store(engine, target, items, checked, None, None)
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


async def check_extension(engine: Engine, items: list[dict[str, Any]]) -> dict[str, Any]:
    """On the target: check every offered instance; their properties with the interface chosen here."""
    loop = asyncio.get_running_loop()
    checked = []
    interfaces = None
    for item in items:
        tag = item["tag"]
        owner = engine.repo.resource_by_tag(tag)
        if owner is not None and owner.id != item["id"]:
            raise conflict(
                "target-tag", f"{tag} is already used by another resource on {engine.server}"
            )
        props = dict(item["props"])
        if item["kind"] == "ip":
            spec = IPSpec.from_props({**props, "interface": "-"})
            try:
                if interfaces is None:
                    interfaces = await loop.run_in_executor(engine.pool, engine.ip_kit().interfaces)
                props["interface"] = choose(spec.cidr, interfaces, item.get("interface"))
            except ParamError as exc:
                raise OpError("interface", f"on {engine.server}: {exc.reason}") from None
            user = used_by(engine, str(spec.address))
            known = engine.repo.resource(item["id"])
            if user is not None and (known is None or user != known.tag_on(engine.server)):
                raise conflict(
                    "address", f"{spec.address} is already used by {user} on {engine.server}"
                )
            if user is None and (ifname := own_interface(interfaces, spec.address)):
                raise OpError(
                    "address",
                    f"{spec.address} is an address of {engine.server} (on {ifname}): {REASON}",
                )
        elif item["kind"] == "app":
            try:
                props = await loop.run_in_executor(engine.pool, validate_app, props)
            except ValueError as exc:
                field, _, reason = str(exc).partition(": ")
                raise OpError(field, f"on {engine.server}: {reason}") from None
        checked.append({"id": item["id"], "props": props})
    return {"items": checked}


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
