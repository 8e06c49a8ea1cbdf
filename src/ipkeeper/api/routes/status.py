"""Status and tunables."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ipkeeper.api.deps import DOCUMENTED, EngineDep
from ipkeeper.api.schemas import ERRORS
from ipkeeper.engine import views

router = APIRouter(prefix="/api/v1", tags=["status"], dependencies=DOCUMENTED, responses=ERRORS)


@router.get("/status")
async def get_status(engine: EngineDep) -> dict[str, Any]:
    """Servers, comm paths, hierarchies and every instance's state per server."""
    return views.status(engine)


@router.get("/tunables")
async def get_tunables(engine: EngineDep) -> dict[str, Any]:
    """Every tunable's value and where it came from (R11)."""
    return views.tunables(engine)


@router.get("/interfaces")
async def get_interfaces(
    engine: EngineDep, address: str, netmask: str, server: str | None = None
) -> dict[str, Any]:
    """Valid interfaces for a VIP on a server (default here), best first (R3)."""
    if server is not None and server != engine.server:
        return await engine.peers.request(
            server, "interfaces", {"address": address, "netmask": netmask}
        )
    return await views.interfaces(engine, address, netmask)
