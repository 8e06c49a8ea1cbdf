"""The target's side of an extend (R18): check what it is offered, choose or validate
each IP resource's interface here, and say what the choices were.

An IP resource's interface on the target is the one asked for when given
(valid here by R3, or refused); else the template's interface name when it
is valid here; else the best valid one. Each item comes back with its
properties (the interface chosen), the valid choices here, best first, and
the guide's warnings for this server (several netmasks on one interface).
"""

from __future__ import annotations

import asyncio
from typing import Any

from ipkeeper.engine.addresses import REASON, own_interface
from ipkeeper.engine.core import Engine
from ipkeeper.engine.create import used_by
from ipkeeper.engine.errors import OpError, conflict
from ipkeeper.kits.app.kit import validate_app
from ipkeeper.kits.ip.advice import mixed_netmasks
from ipkeeper.kits.ip.interfaces import InterfaceInfo, candidates, choose
from ipkeeper.kits.ip.params import IPSpec, ParamError


def default_interface(
    spec: IPSpec, interfaces: list[InterfaceInfo], template: str | None
) -> str | None:
    """The template's interface name when it is a valid choice here (R3), else None."""
    valid = [c.name for c in candidates(spec.cidr, interfaces)]
    return template if template in valid else None


async def _check_ip(
    engine: Engine, item: dict[str, Any], props: dict[str, Any], interfaces: list[InterfaceInfo]
) -> dict[str, Any]:
    spec = IPSpec.from_props({**props, "interface": "-"})
    requested = item.get("interface") or default_interface(
        spec, interfaces, item.get("template_interface")
    )
    try:
        props["interface"] = choose(spec.cidr, interfaces, requested)
    except ParamError as exc:
        raise OpError("interface", f"on {engine.server}: {exc.reason}") from None
    user = used_by(engine, str(spec.address))
    known = engine.repo.resource(item["id"])
    if user is not None and (known is None or user != known.tag_on(engine.server)):
        raise conflict("address", f"{spec.address} is already used by {user} on {engine.server}")
    if user is None and (ifname := own_interface(interfaces, spec.address)):
        raise OpError(
            "address", f"{spec.address} is an address of {engine.server} (on {ifname}): {REASON}"
        )
    on = next((i for i in interfaces if i.name == props["interface"]), None)
    warning = mixed_netmasks(spec.cidr, on)
    return {
        "id": item["id"],
        "props": props,
        "choices": [
            {"name": c.name, "reason": c.reason} for c in candidates(spec.cidr, interfaces)
        ],
        "warnings": [f"on {engine.server}: {warning}"] if warning else [],
    }


async def check_extension(engine: Engine, items: list[dict[str, Any]]) -> dict[str, Any]:
    """On the target: check every offered instance; their properties with the interface
    chosen here, the choices there were and this server's warnings. Changes nothing."""
    loop = asyncio.get_running_loop()
    checked = []
    interfaces: list[InterfaceInfo] | None = None
    for item in items:
        tag = item["tag"]
        owner = engine.repo.resource_by_tag(tag)
        if owner is not None and owner.id != item["id"]:
            raise conflict(
                "target-tag", f"{tag} is already used by another resource on {engine.server}"
            )
        props = dict(item["props"])
        if item["kind"] == "ip":
            if interfaces is None:
                interfaces = await loop.run_in_executor(engine.pool, engine.ip_kit().interfaces)
            checked.append(await _check_ip(engine, item, props, interfaces))
            continue
        if item["kind"] == "app":
            try:
                props = await loop.run_in_executor(engine.pool, validate_app, props)
            except ValueError as exc:
                field, _, reason = str(exc).partition(": ")
                raise OpError(field, f"on {engine.server}: {reason}") from None
        checked.append({"id": item["id"], "props": props, "choices": [], "warnings": []})
    return {"items": checked}
