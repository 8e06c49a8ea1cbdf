"""Moving hierarchies and joining them: in/out of service, dependencies."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ipkeeper.api.deps import EngineDep
from ipkeeper.api.schemas import Dependency, InService
from ipkeeper.engine import admin
from ipkeeper.engine.errors import OpError

router = APIRouter(prefix="/api/v1", tags=["hierarchy"])


@router.post("/resources/{tag}/in-service")
async def post_in_service(
    engine: EngineDep, tag: str, body: InService | None = None
) -> dict[str, Any]:
    """Bring the hierarchy in service on a server (R24)."""
    server = body.server if body else None
    if server not in (None, engine.server):
        raise OpError("server", f"{server} is not a server of this cluster", status=404)
    return await admin.in_service(engine, tag)


@router.post("/resources/{tag}/out-of-service")
async def post_out_of_service(engine: EngineDep, tag: str) -> dict[str, Any]:
    """Take the hierarchy out of service (R24)."""
    return await admin.out_of_service(engine, tag)


@router.post("/dependencies", status_code=201)
async def post_dependency(engine: EngineDep, body: Dependency) -> dict[str, Any]:
    """Make PARENT depend on CHILD (R21)."""
    return await admin.depend(engine, body.parent, body.child)


@router.delete("/dependencies/{parent}/{child}")
async def delete_dependency(engine: EngineDep, parent: str, child: str) -> dict[str, Any]:
    """Remove a dependency (R21)."""
    return await admin.undepend(engine, parent, child)
