"""Moving hierarchies and joining them: in/out of service, dependencies."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ipkeeper.api.deps import DOCUMENTED, EngineDep, TagPath
from ipkeeper.api.schemas import ERRORS, Dependency, Extend, InService, Unextend
from ipkeeper.engine import admin, extend, moves

router = APIRouter(prefix="/api/v1", tags=["hierarchy"], dependencies=DOCUMENTED, responses=ERRORS)


@router.post("/resources/{tag}/in-service")
async def post_in_service(
    engine: EngineDep, tag: TagPath, body: InService | None = None
) -> dict[str, Any]:
    """Bring the hierarchy in service on a server (R24)."""
    return await moves.in_service(engine, tag, body.server if body else None)


@router.post("/resources/{tag}/out-of-service")
async def post_out_of_service(engine: EngineDep, tag: TagPath) -> dict[str, Any]:
    """Take the hierarchy out of service (R24)."""
    return await moves.out_of_service(engine, tag)


@router.post("/dependencies", status_code=201)
async def post_dependency(engine: EngineDep, body: Dependency) -> dict[str, Any]:
    """Make PARENT depend on CHILD (R21)."""
    return await admin.depend(engine, body.parent, body.child)


@router.delete("/dependencies/{parent}/{child}")
async def delete_dependency(engine: EngineDep, parent: TagPath, child: TagPath) -> dict[str, Any]:
    """Remove a dependency (R21)."""
    return await admin.undepend(engine, parent, child)


@router.post("/resources/{tag}/extend")
async def post_extend(engine: EngineDep, tag: TagPath, body: Extend) -> dict[str, Any]:
    """Extend the hierarchy from its template (the server where it is in service) to a target (R18)."""
    return await extend.extend_from_holder(engine, tag, **body.model_dump())


@router.post("/resources/{tag}/unextend")
async def post_unextend(engine: EngineDep, tag: TagPath, body: Unextend) -> dict[str, Any]:
    """Remove the hierarchy from one server; refused where it is in service (R19)."""
    return await extend.unextend(engine, tag, body.server)
