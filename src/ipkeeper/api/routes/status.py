"""Status and tunables."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from ipkeeper.api.deps import DOCUMENTED, EngineDep, ServerQuery
from ipkeeper.api.schemas import ERRORS
from ipkeeper.engine import views

router = APIRouter(prefix="/api/v1", tags=["status"], dependencies=DOCUMENTED, responses=ERRORS)

AddressQuery = Annotated[str, Query(min_length=1, max_length=253)]
NetmaskQuery = Annotated[str, Query(min_length=1, max_length=15)]


@router.get("/status")
async def get_status(engine: EngineDep, request: Request) -> dict[str, Any]:
    """Servers, comm paths, hierarchies and every instance's state per server, and how
    this daemon's API and cluster keys are secured (`security`)."""
    surface = getattr(request.app.state, "surface", None)
    data = views.status(engine)
    if surface is not None:
        data["security"] = surface.as_dict()
    return data


@router.get("/tunables")
async def get_tunables(engine: EngineDep) -> dict[str, Any]:
    """Every tunable's value and where it came from (R11)."""
    return views.tunables(engine)


@router.get("/interfaces")
async def get_interfaces(
    engine: EngineDep, address: AddressQuery, netmask: NetmaskQuery, server: ServerQuery = None
) -> dict[str, Any]:
    """Valid interfaces for a VIP on a server (default here), best first (R3)."""
    if server is not None and server != engine.server:
        return await engine.peers.request(
            server, "interfaces", {"address": address, "netmask": netmask}
        )
    return await views.interfaces(engine, address, netmask)
