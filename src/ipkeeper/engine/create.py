"""Creating resources (R17): validate everything, store, bring in service, or change nothing.

A creation is recorded with `pending = create` before the bring-up starts, so
a crash in the middle is finished (or rolled back) at the next start.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from ipkeeper.engine.addresses import refuse_own, refuse_peers_own
from ipkeeper.engine.advice import ping_list_warnings, read_hosts
from ipkeeper.engine.core import Engine
from ipkeeper.engine.errors import OpError, conflict
from ipkeeper.kits.app.kit import validate_app
from ipkeeper.kits.ip.advice import mixed_netmasks, not_in_hosts
from ipkeeper.kits.ip.interfaces import InterfaceInfo, choose
from ipkeeper.kits.ip.params import (
    IPAddress,
    IPSpec,
    ParamError,
    check_tag,
    check_vip,
    default_tag,
    interface_of,
    parse_address,
    parse_netmask,
    parse_ping_list,
)
from ipkeeper.model.states import ResourceState
from ipkeeper.store.repo import InstanceRecord, ResourceRecord

SWITCHBACK = ("intelligent", "automatic")
NOT_PROTECTED = "not extended to another server yet: no failover is possible (R17)"
BROADCAST_WAYS_OUT = (
    "if nothing on this subnet answers a broadcast ping, give a ping list of hosts that do "
    "answer (create --pinglist ADDR, the GUI's Ping list), or turn the broadcast ping off "
    "for this resource (create --no-broadcast-ping; NOBCASTPING=1 for every resource)"
)


def check_switchback(value: str) -> str:
    """intelligent or automatic (R23)."""
    if value not in SWITCHBACK:
        raise OpError("switchback", f"{value!r} must be intelligent or automatic")
    return value


def check_priority(field: str, value: int) -> int:
    """A priority is 1..999 (1 is the highest)."""
    if not 1 <= value <= 999:
        raise OpError(field, f"{value} is out of range 1..999")
    return value


def check_known_server(engine: Engine, field: str, server: str) -> None:
    """Refuse a server name that is not in this cluster's configuration, naming it."""
    names = [s["name"] for s in engine.peers.servers()]
    if server not in names:
        raise OpError(
            field,
            f"{server} is not a server of this cluster (servers: {', '.join(names)})",
            status=404,
        )


def used_by(engine: Engine, address: str) -> str | None:
    """The tag of the IP resource that already uses `address` (R5), if any."""
    rec = engine.repo.ip_resource_with(address)
    return rec.tag_on(engine.server) if rec is not None else None


def check_new_tag(engine: Engine, tag: str) -> str:
    """A well-formed tag that no resource uses yet (R4); and a server that may hold resources."""
    if engine.witness:
        raise OpError("server", f"{engine.server} is a witness: it holds no resources")
    try:
        check_tag(tag)
    except ParamError as exc:
        raise OpError(exc.field, exc.reason) from None
    if engine.repo.resource_by_tag(tag) is not None:
        raise conflict("tag", f"{tag} already exists")
    return tag


async def unused_in_cluster(engine: Engine, tag: str, address: str | None) -> None:
    """R4, R5 across the cluster: ask every live peer whether the tag or address is taken."""
    for server in sorted(engine.peers.alive() - {engine.server}):
        own = [address] if address else []
        answer = await engine.peers.request(
            server, "used", {"tag": tag, "address": address, "own": own}, timeout=10
        )
        if answer.get("tag_used"):
            raise conflict("tag", f"{tag} already exists on {server}")
        if answer.get("address_used_by"):
            raise conflict(
                "address",
                f"{address} is already used by resource {answer['address_used_by']} on {server} (R5)",
            )
        refuse_peers_own(server, answer, own)


async def ip_spec(
    engine: Engine, address: str, netmask: str, interface: str | None
) -> tuple[IPSpec, str, list[InterfaceInfo]]:
    """Parse and validate an IP resource here (R1-R3, R5); returns the spec, the name
    entered and this server's interfaces (for the warnings)."""
    loop = asyncio.get_running_loop()
    try:
        addr = await loop.run_in_executor(engine.pool, parse_address, address)
        prefix = parse_netmask(netmask, addr.version)
        cidr = interface_of(addr, prefix)
        check_vip(cidr, interface_chosen=interface is not None)
        interfaces = await loop.run_in_executor(engine.pool, engine.ip_kit().interfaces)
        chosen = choose(cidr, interfaces, interface)
    except ParamError as exc:
        raise OpError(exc.field, exc.reason) from None
    owner = used_by(engine, str(addr))
    if owner is not None:
        raise conflict("address", f"{addr} is already used by resource {owner} (R5)")
    refuse_own(engine, addr, interfaces)
    return IPSpec(addr, prefix, chosen), address.strip(), interfaces


def _planning_warnings(spec: IPSpec, entered: str, interfaces: list[InterfaceInfo]) -> list[str]:
    """The guide's planning advice for a new VIP here: netmasks, /etc/hosts."""
    on = next((i for i in interfaces if i.name == spec.interface), None)
    found = [mixed_netmasks(spec.cidr, on), not_in_hosts(entered, spec.address, read_hosts())]
    return [w for w in found if w]


def _ping_entries(entries: list[str]) -> list[IPAddress]:
    try:
        return parse_ping_list(entries)[0]
    except ParamError as exc:
        raise OpError(exc.field, exc.reason) from None


async def create_ip(
    engine: Engine,
    address: str,
    netmask: str,
    interface: str | None = None,
    tag: str | None = None,
    switchback: str = "intelligent",
    priority: int = 1,
    pinglist: list[str] | None = None,
    broadcast_ping: bool = True,
) -> dict[str, Any]:
    """Create an IP resource here and bring it in service (R17); with `pinglist`, the
    subnet's ping list is set first (R13), so that a subnet where nothing answers a
    broadcast ping can be created; `broadcast_ping` False is NOBCASTPING for it alone."""
    check_switchback(switchback)
    check_priority("priority", priority)
    listed = _ping_entries(pinglist or [])
    async with engine.catalog:
        spec, entered, interfaces = await ip_spec(engine, address, netmask, interface)
        spec = replace(spec, broadcast_ping=broadcast_ping)
        final_tag = check_new_tag(engine, tag or default_tag(entered))
        await unused_in_cluster(engine, final_tag, str(spec.address))
        subnet = str(spec.network)
        before = engine.repo.ping_list(subnet)
        added = [str(a) for a in listed if str(a) not in before]
        warnings = _planning_warnings(spec, entered, interfaces)
        warnings += await ping_list_warnings(engine, [a for a in listed if str(a) in added])
        if added:
            engine.repo.set_ping_list(subnet, before + added)
        try:
            created = await _create(engine, "ip", final_tag, spec.to_props(), switchback, priority)
        except OpError as exc:
            if added:
                engine.repo.set_ping_list(subnet, before)
            if exc.field == "pinglist" and broadcast_ping and not before and not added:
                raise OpError(
                    exc.field, f"{exc.reason}; {BROADCAST_WAYS_OUT}", exc.status
                ) from None
            raise
    if added:
        engine.events.add(
            "admin", f"ping list for {subnet}: {', '.join(before + added)}", tag=final_tag
        )
    created["warnings"] = [*created["warnings"], *warnings]
    return created


async def create_app(
    engine: Engine,
    tag: str,
    restore: str,
    remove: str,
    check: str,
    recover: str | None = None,
    timeout: float = 60.0,
    switchback: str = "intelligent",
    priority: int = 1,
) -> dict[str, Any]:
    """Create an application resource here and bring it in service."""
    check_switchback(switchback)
    check_priority("priority", priority)
    commands = {
        "restore": restore,
        "remove": remove,
        "check": check,
        "recover": recover,
        "timeout": timeout,
    }
    loop = asyncio.get_running_loop()
    async with engine.catalog:
        check_new_tag(engine, tag)
        await unused_in_cluster(engine, tag, None)
        try:
            props = await loop.run_in_executor(engine.pool, validate_app, commands)
        except ValueError as exc:
            field, _, reason = str(exc).partition(": ")
            raise OpError(field, reason) from None
        return await _create(engine, "app", tag, props, switchback, priority)


async def create_group(
    engine: Engine, tag: str, switchback: str = "intelligent", priority: int = 1
) -> dict[str, Any]:
    """Create a group resource here (in service at once); make resources its children."""
    check_switchback(switchback)
    check_priority("priority", priority)
    async with engine.catalog:
        check_new_tag(engine, tag)
        await unused_in_cluster(engine, tag, None)
        return await _create(engine, "group", tag, {}, switchback, priority)


async def _create(
    engine: Engine, kind: str, tag: str, props: dict[str, Any], switchback: str, priority: int
) -> dict[str, Any]:
    rid = uuid.uuid4().hex
    record = ResourceRecord(
        rid, kind, switchback, 1, (InstanceRecord(rid, engine.server, tag, priority, props),)
    )
    with engine.repo.db.transaction():
        engine.repo.insert_resource(record)
        engine.repo.set_state(rid, ResourceState.OSU, "being created", pending="create")
    engine.events.add("create", f"creating {kind} resource", tag=tag, props=props)
    return await finish_create(engine, rid)


async def finish_delete_created(engine: Engine, ids: set[str]) -> None:
    """Undo resources just created (a later step failed): down, then deleted everywhere."""
    with engine.repo.db.transaction():
        for rid in ids:
            current = engine.repo.local_state(rid)
            if current is not None:
                engine.repo.set_state(rid, current.state, current.reason, pending="delete")
    await engine.take_down(ids, "creation undone")
    with engine.repo.db.transaction():
        for rid in ids:
            engine.repo.delete_resource(rid)
    for rid in ids:
        engine.locks.forget(rid)


async def finish_create(engine: Engine, rid: str) -> dict[str, Any]:
    """Bring a just-created resource in service, or delete it again if that fails."""
    rec = engine.repo.resource(rid)
    assert rec is not None
    tag = rec.tag_on(engine.server)
    async with engine.locks.hold(lambda: {rid}):
        result = await engine.bring_up({rid}, "created")
    if not result.ok:
        engine.repo.delete_resource(rid)
        engine.events.add("create-failed", f"not created: {result.reason}", tag=tag)
        fields = {"unique": "address", "interface": "interface", "reachability": "pinglist"}
        field = fields.get(result.step or "", "restore")
        raise OpError(field, f"bring-up failed, nothing created: {result.reason}")
    engine.events.add("created", f"{rec.kind} resource in service on {engine.server}", tag=tag)
    engine.peers.publish_catalog([rid])
    state = engine.state(rid)
    return {
        "tag": tag,
        "type": rec.kind,
        "state": state.value if state else None,
        "warnings": [NOT_PROTECTED],
    }


Creator = Callable[..., Awaitable[dict[str, Any]]]
CREATORS: dict[str, Creator] = {"ip": create_ip, "app": create_app, "group": create_group}


async def create_on(
    engine: Engine, server: str | None, kind: str, options: dict[str, Any]
) -> dict[str, Any]:
    """Create a resource of `kind` on `server` (default: this one), the guide's Server
    field: the server asked forwards the creation, which runs and is checked there."""
    if kind not in CREATORS:
        raise OpError("type", f"{kind!r} is not a resource type ({', '.join(CREATORS)})")
    if server is None or server == engine.server:
        return await CREATORS[kind](engine, **options)
    check_known_server(engine, "server", server)
    return await engine.peers.request(
        server, "create", {"kind": kind, "options": options}, timeout=120
    )
