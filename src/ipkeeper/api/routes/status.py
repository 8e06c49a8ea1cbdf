"""Status, tunables and interface choices."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from ipkeeper.api.deps import DOCUMENTED, EngineDep, ReplyRoute
from ipkeeper.api.replies import Interfaces, Status, Tunables
from ipkeeper.api.schemas import PEERS, errors
from ipkeeper.engine import views

router = APIRouter(
    prefix="/api/v1", tags=["status"], dependencies=DOCUMENTED, route_class=ReplyRoute
)


@router.get(
    "/status",
    operation_id="getStatus",
    summary="Cluster status",
    response_model=Status,
    responses=errors(),
)
async def get_status(engine: EngineDep) -> dict[str, Any]:
    """Servers, comm paths, hierarchies and every instance's state per server, with since when and why."""
    return views.status(engine)


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
    responses=errors(400, 404, 422, *PEERS),
)
async def get_interfaces(
    engine: EngineDep,
    address: Annotated[
        str, Query(description="IPv4/IPv6 address or host name", examples=["198.18.0.50"])
    ],
    netmask: Annotated[str, Query(description="dotted netmask or prefix length", examples=["24"])],
    server: Annotated[
        str | None, Query(description="default: this server", examples=["s2"])
    ] = None,
) -> dict[str, Any]:
    """Valid interfaces for a VIP on a server (default here), best first, each with why (R3)."""
    if server is not None and server != engine.server:
        return await engine.peers.request(
            server, "interfaces", {"address": address, "netmask": netmask}
        )
    return await views.interfaces(engine, address, netmask)
