"""Read-only views for the CLI, API and GUI: status, properties (R12), interfaces (R3)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ipkeeper.engine import guard, storewatch
from ipkeeper.engine.admin import resolve
from ipkeeper.engine.core import Engine
from ipkeeper.engine.create import NOT_PROTECTED
from ipkeeper.engine.errors import OpError
from ipkeeper.kits.ip.interfaces import candidates
from ipkeeper.kits.ip.kit import describe_props
from ipkeeper.kits.ip.params import IPSpec, ParamError, interface_of, parse_address, parse_netmask
from ipkeeper.store.repo import ResourceRecord


def instance_view(engine: Engine, rec: ResourceRecord, server: str) -> dict[str, Any]:
    """One server's instance as status shows it: state, priority, reason, action in flight.

    Another server's state is the last it reported; `stale` says it is not
    alive now, so the state may be out of date.
    """
    inst = rec.instance(server)
    assert inst is not None
    view: dict[str, Any] = {"tag": inst.tag, "priority": inst.priority, "state": None, "reason": ""}
    if server != engine.server:
        reported = engine.table.states_of(server).get(rec.id)
        if reported is not None:
            view.update(
                state=reported.state.value if reported.state else None,
                reason=reported.reason,
                since=reported.since,
                pending=reported.pending,
                busy=reported.busy,
            )
        if server not in engine.peers.alive():
            view["stale"] = True
        return view
    st = engine.repo.local_state(rec.id)
    if st is not None:
        view.update(state=st.state.value, reason=st.reason, since=st.since, pending=st.pending)
    checked = engine.last_check.get(rec.id)
    if checked is not None and st is not None and st.state.in_service:
        view["last_check"] = {"ok": checked[0].ok, "reason": checked[0].reason, "at": checked[1]}
    busy = engine.busy.get(rec.id)
    if busy is not None:
        view["busy"] = f"{busy[0]} in progress ({time.monotonic() - busy[1]:.0f} s)"
    return view


def resource_view(engine: Engine, rec: ResourceRecord) -> dict[str, Any]:
    """A resource with its dependencies and every server's instance."""
    graph = engine.graph()
    return {
        "tag": rec.tag_on(engine.server),
        "id": rec.id,
        "type": rec.kind,
        "switchback": rec.switchback,
        "parents": sorted(engine.tag(p) for p in graph.parents.get(rec.id, ())),
        "children": sorted(engine.tag(c) for c in graph.children.get(rec.id, ())),
        "servers": {i.server: instance_view(engine, rec, i.server) for i in rec.instances},
    }


def status(engine: Engine) -> dict[str, Any]:
    """The same object as `ipkeeper status --json` and GET /api/v1/status."""
    quorum = engine.peers.quorum()
    hierarchies = guard.hierarchies(engine)
    return {
        "server": engine.server,
        "servers": engine.peers.servers(),
        "quorum": {**quorum, "note": guard.quorum_note(quorum.get("note", ""), hierarchies)},
        "resources": [resource_view(engine, rec) for rec in engine.repo.resources()],
        "hierarchies": hierarchies,
        "store": storewatch.describe(engine),
        # Kept in service unprotected for want of a responder (engine/noresponder.py).
        "unprotected": [
            {"tag": engine.tag(rid), "reason": why} for rid, why in engine.unprotected.items()
        ],
    }


async def show(engine: Engine, tag: str, server: str | None = None) -> dict[str, Any]:
    """R12: every property of `tag` on `server` (default: this one)."""
    rec = resolve(engine, tag)
    where = server or engine.server
    inst = rec.instance(where)
    if inst is None:
        raise OpError("server", f"{tag} is not extended to {where}", status=404)
    view = resource_view(engine, rec)
    props: dict[str, Any] = {
        "tag": inst.tag,
        "type": rec.kind,
        "server": where,
        **{k: v for k, v in instance_view(engine, rec, where).items() if k != "tag"},
        "switchback": rec.switchback,
        "parents": view["parents"],
        "children": view["children"],
        "equivalents": [
            {"server": i.server, "tag": i.tag, "priority": i.priority} for i in rec.instances
        ],
    }
    if len(rec.instances) == 1:
        props["warnings"] = [NOT_PROTECTED]
    if rec.kind == "ip":
        spec = IPSpec.from_props(inst.props)
        props.update(describe_props(spec))
        props["ping_list"] = (
            engine.repo.ping_list(str(spec.network)) if where == engine.server else None
        )
        if where == engine.server and spec.source_address and spec.address.version == 4:
            loop = asyncio.get_running_loop()
            effective = await loop.run_in_executor(
                engine.pool, engine.ip_kit().source_effective, spec
            )
            props["source_address_effective"] = (
                "yes"
                if effective
                else "no (takes effect at the next bring-up, or another resource in the subnet holds it)"
            )
    else:
        props.update({k: v for k, v in inst.props.items()})
    return props


async def interfaces(engine: Engine, address: str, netmask: str) -> dict[str, Any]:
    """R3: the valid interfaces for a VIP on this server, best first, each with why."""
    loop = asyncio.get_running_loop()
    try:
        addr = await loop.run_in_executor(engine.pool, parse_address, address)
        cidr = interface_of(addr, parse_netmask(netmask, addr.version))
    except ParamError as exc:
        raise OpError(exc.field, exc.reason) from None
    found = candidates(cidr, await loop.run_in_executor(engine.pool, engine.ip_kit().interfaces))
    return {
        "server": engine.server,
        "address": str(addr),
        "subnet": str(cidr.network),
        "interfaces": [{"name": c.name, "reason": c.reason} for c in found],
    }


def tunables(engine: Engine) -> dict[str, Any]:
    """Every tunable's value in force and where it came from (R11)."""
    return {
        "file": str(engine.tunables.path),
        "tunables": [
            {"name": e.name, "value": e.value, "source": e.source} for e in engine.tunables.all()
        ],
    }
