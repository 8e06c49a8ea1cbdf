"""Status, tunables and interface choices."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from ipkeeper.api.deps import DOCUMENTED, EngineDep, ReplyRoute, ServerQuery
from ipkeeper.api.replies import Interfaces, Status, Tunables
from ipkeeper.api.schemas import PEERS, errors
from ipkeeper.engine import views

router = APIRouter(
    prefix="/api/v1", tags=["status"], dependencies=DOCUMENTED, route_class=ReplyRoute
)

AddressQuery = Annotated[
    str,
    Query(
        min_length=1,
        max_length=253,
        description="IPv4/IPv6 address or host name",
        examples=["198.18.0.50"],
    ),
]
NetmaskQuery = Annotated[
    str,
    Query(
        min_length=1, max_length=15, description="dotted netmask or prefix length", examples=["24"]
    ),
]


@router.get(
    "/status",
    operation_id="getStatus",
    summary="Cluster status",
    response_model=Status,
    responses=errors(),
)
async def get_status(engine: EngineDep, request: Request) -> dict[str, Any]:
    """Servers, comm paths, hierarchies and every instance's state per server, with since
    when and why, and how this daemon's API and cluster keys are secured (`security`)."""
    surface = getattr(request.app.state, "surface", None)
    data = views.status(engine)
    if surface is not None:
        data["security"] = surface.as_dict()
    return data


@router.get(
    "/tunables",
    operation_id="getTunables",
    summary="Tunables in force",
    response_model=Tunables,
    responses=errors(),
)
async def get_tunables(engine: EngineDep) -> dict[str, Any]:
    """Every tunable's value on this server and where it came from (R11)."""
    return views.tunables(engine)


@router.get(
    "/interfaces",
    operation_id="listInterfaces",
    summary="Valid interfaces for a VIP",
    response_model=Interfaces,
    responses=errors(404, *PEERS),
)
async def get_interfaces(
    engine: EngineDep, address: AddressQuery, netmask: NetmaskQuery, server: ServerQuery = None
) -> dict[str, Any]:
    """Valid interfaces for a VIP on a server (default here), best first, each with why (R3)."""
    if server is not None and server != engine.server:
        return await engine.peers.request(
            server, "interfaces", {"address": address, "netmask": netmask}
        )
    return await views.interfaces(engine, address, netmask)
