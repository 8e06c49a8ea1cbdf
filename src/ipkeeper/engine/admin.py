"""Administrative operations on existing resources (R19-R21, R24, R13-R15 settings).

Each operation holds the locks of the hierarchy it touches, so two of them
never interleave on one hierarchy, and reports only after the store has
committed the outcome.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ipkeeper.engine.advice import ping_list_warnings
from ipkeeper.engine.core import Engine
from ipkeeper.engine.create import check_switchback
from ipkeeper.engine.errors import OpError, conflict, not_found
from ipkeeper.engine.guard import layout, refuse_exposure
from ipkeeper.engine.placement import state_on
from ipkeeper.kits.ip.params import IPSpec, ParamError, parse_ping_list
from ipkeeper.model.states import ResourceState
from ipkeeper.store.repo import InstanceRecord, ResourceRecord


def resolve(engine: Engine, tag: str) -> ResourceRecord:
    """The resource called `tag` (on any server), or a 404 error."""
    rec = engine.repo.resource_by_tag(tag)
    if rec is None:
        raise not_found(tag)
    return rec


def local_instance(engine: Engine, rec: ResourceRecord, tag: str) -> InstanceRecord:
    """This server's instance of `rec`, or an error saying it is not extended here."""
    inst = rec.instance(engine.server)
    if inst is None:
        raise conflict("tag", f"{tag} is not extended to {engine.server}")
    return inst


async def finish_delete(engine: Engine, doomed: set[str]) -> bool:
    """Take `doomed` out of service and delete them; False when a take-down failed."""
    result = await engine.take_down(doomed, "being deleted")
    if not result.ok:
        with engine.repo.db.transaction():
            for rid in doomed:
                engine.repo.set_pending(rid, None)
        return False
    with engine.repo.db.transaction():
        for rid in doomed:
            tag = engine.tag(rid)
            engine.repo.delete_resource(rid)
            engine.events.add("deleted", "resource deleted", tag=tag)
    for rid in doomed:
        engine.locks.forget(rid)
    return True


def _both(engine: Engine, parent: str, child: str) -> set[str]:
    return engine.hierarchy_of(parent) | engine.hierarchy_of(child)


def _check_states(
    engine: Engine, prec: ResourceRecord, crec: ResourceRecord, parent: str, child: str
) -> None:
    """R21: on every server with both, both in service or both out; the child wherever the parent runs."""
    pservers = {i.server for i in prec.instances}
    cservers = {i.server for i in crec.instances}
    for server in sorted(pservers & cservers):
        pstate, _ = state_on(engine, server, prec.id)
        cstate, _ = state_on(engine, server, crec.id)
        if pstate is not None and cstate is not None and pstate.in_service != cstate.in_service:
            raise conflict(
                "dependency",
                f"{parent} is {pstate.value} and {child} is {cstate.value} on {server}; "
                "bring both in or out of service first",
            )
    for server in sorted(pservers - cservers):
        pstate, _ = state_on(engine, server, prec.id)
        if pstate is not None and pstate.in_service:
            raise conflict(
                "dependency", f"{child} is not extended to {server}, where {parent} is in service"
            )


def _told(warnings: list[str]) -> dict[str, Any]:
    """An event's details: the warnings, when there are any."""
    return {"warnings": warnings} if warnings else {}


async def depend(engine: Engine, parent: str, child: str) -> dict[str, Any]:
    """Make `parent` depend on `child` (R21); a cycle or a state mismatch is refused."""
    prec, crec = resolve(engine, parent), resolve(engine, child)
    async with engine.catalog, engine.locks.hold(lambda: _both(engine, prec.id, crec.id)):
        cycle = engine.graph().cycle_with(prec.id, crec.id)
        if cycle is not None:
            path = " -> ".join(engine.tag(r) for r in cycle)
            raise conflict("dependency", f"{path} would be a cycle")
        _check_states(engine, prec, crec, parent, child)
        warnings = refuse_exposure(
            engine, "dependency", layout(engine).with_edges(add=[(prec.id, crec.id)])
        )
        with engine.repo.db.transaction():
            engine.repo.add_dependency(prec.id, crec.id)
            engine.repo.bump_version(prec.id)
        engine.peers.publish_catalog([prec.id])
        engine.events.add("admin", f"now depends on {child}", tag=parent, **_told(warnings))
    return {"parent": parent, "child": child, "warnings": warnings}


async def undepend(engine: Engine, parent: str, child: str) -> dict[str, Any]:
    """Remove the dependency of `parent` on `child`."""
    prec, crec = resolve(engine, parent), resolve(engine, child)
    async with engine.catalog, engine.locks.hold(lambda: _both(engine, prec.id, crec.id)):
        if not engine.repo.has_dependency(prec.id, crec.id):
            raise OpError("dependency", f"{parent} does not depend on {child}", status=404)
        warnings = refuse_exposure(
            engine,
            "dependency",
            layout(engine).with_edges(remove=[(prec.id, crec.id)]),
            first_way=f"keep {parent} depending on an IP resource",
        )
        with engine.repo.db.transaction():
            engine.repo.remove_dependency(prec.id, crec.id)
            engine.repo.bump_version(prec.id)
        engine.peers.publish_catalog([prec.id])
        engine.events.add("admin", f"no longer depends on {child}", tag=parent, **_told(warnings))
    return {"parent": parent, "child": child, "removed": True, "warnings": warnings}


SETTINGS = {
    "source-address": ("source_address", {"yes": True, "no": False}),
    "restore-recover": ("restore_recover", {"enable": True, "disable": False}),
    "broadcast-ping": ("broadcast_ping", {"yes": True, "no": False}),
}


async def set_setting(engine: Engine, tag: str, key: str, value: str) -> dict[str, Any]:
    """Change a setting: source-address (R14), restore-recover (R15), broadcast-ping (R9)
    or switchback (R23)."""
    rec = resolve(engine, tag)
    notes: list[str] = []
    if key == "switchback":
        check_switchback(value)
        with engine.repo.db.transaction():
            engine.repo.set_switchback(rec.id, value)
            engine.repo.bump_version(rec.id)
    elif key in SETTINGS:
        if rec.kind != "ip":
            raise OpError("setting", f"{key} applies to IP resources only; {tag} is {rec.kind}")
        prop, choices = SETTINGS[key]
        if value not in choices:
            raise OpError("value", f"{value!r} must be one of {', '.join(choices)}")
        async with engine.locks.hold(lambda: engine.hierarchy_of(rec.id)):
            notes = await _apply_ip_setting(engine, rec, tag, prop, choices[value])
    else:
        raise OpError(
            "setting",
            f"{key!r} is not a setting (source-address, restore-recover, broadcast-ping, switchback)",
        )
    engine.peers.publish_catalog([rec.id])
    engine.events.add("admin", f"{key} set to {value}", tag=tag)
    return {"tag": tag, "setting": key, "value": value, "notes": notes}


async def _source_notes(engine: Engine, spec: IPSpec, value: bool, in_service: bool) -> list[str]:
    notes = []
    if value and spec.address.version == 6:
        notes.append("source address applies to IPv4 only; it has no effect on this IPv6 resource")
    elif in_service:
        notes.append("takes effect at the next bring-up")
    if value and spec.address.version == 4:
        loop = asyncio.get_running_loop()
        found = await loop.run_in_executor(
            engine.pool, engine.ip_kit().addresses_on, spec.interface
        )
        own = [a for a in found if a.version == 4 and a.ip != spec.address]
        if not any(a.ip in spec.network for a in own):
            notes.append(
                f"{spec.network} is not the subnet of this server's own address: all traffic to it will use the VIP"
            )
    return notes


async def _apply_ip_setting(
    engine: Engine, rec: ResourceRecord, tag: str, prop: str, value: bool
) -> list[str]:
    inst = local_instance(engine, rec, tag)
    props = {**inst.props, prop: value}
    state = engine.state(rec.id)
    in_service = state is not None and state.in_service
    notes = (
        await _source_notes(engine, IPSpec.from_props(props), value, in_service)
        if prop == "source_address"
        else []
    )
    with engine.repo.db.transaction():
        engine.repo.put_instance(
            InstanceRecord(inst.resource_id, inst.server, inst.tag, inst.priority, props)
        )
        engine.repo.bump_version(rec.id)
    if prop == "restore_recover" and in_service:
        why = (
            "enabled: monitored again"
            if value
            else "disabled: no longer checked, address left as it is"
        )
        engine.record(
            rec,
            ResourceState.ISP if value else ResourceState.ISU,
            "state",
            f"restore-and-recover {why}",
        )
    return notes


async def pinglist(
    engine: Engine, tag: str, verb: str | None, addresses: list[str]
) -> dict[str, Any]:
    """Show or edit this server's ping list for the subnet of `tag` (R13)."""
    rec = resolve(engine, tag)
    if rec.kind != "ip":
        raise OpError("tag", f"{tag} is {rec.kind}; ping lists belong to IP resources")
    spec = IPSpec.from_props(local_instance(engine, rec, tag).props)
    subnet = str(spec.network)
    current = engine.repo.ping_list(subnet)
    warnings: list[str] = []
    if verb is not None:
        if verb not in ("add", "remove", "clear"):
            raise OpError("verb", f"{verb!r} must be add, remove or clear")
        if verb != "clear" and not addresses:
            raise OpError("addresses", f"{verb} needs at least one address")
        if verb == "clear" and addresses:
            raise OpError("addresses", "clear takes no addresses (use remove to drop some)")
        try:
            parsed, _ = parse_ping_list(addresses)
        except ParamError as exc:
            raise OpError(exc.field, exc.reason) from None
        texts = [str(a) for a in parsed]
        if verb == "add":
            # Warned once, when an address joins the list: not when it is added again or removed.
            new = [a for a in parsed if str(a) not in current]
            warnings = await ping_list_warnings(engine, new)
            current = current + [a for a in texts if a not in current]
        elif verb == "remove":
            missing = [a for a in texts if a not in current]
            if missing:
                raise OpError(
                    "pinglist", f"{', '.join(missing)} not in the list for {subnet}", status=404
                )
            current = [a for a in current if a not in texts]
        else:
            current = []
        engine.repo.set_ping_list(subnet, current)
        engine.events.add(
            "admin",
            f"ping list for {subnet}: {', '.join(current) or 'empty (broadcast ping)'}",
            tag=tag,
        )
    return {
        "tag": tag,
        "server": engine.server,
        "subnet": subnet,
        "addresses": current,
        "warnings": warnings,
    }
