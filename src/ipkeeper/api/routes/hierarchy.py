"""Moving hierarchies and joining them: in/out of service, dependencies, extend."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ipkeeper.api.deps import DOCUMENTED, EngineDep, ReplyRoute, TagPath
from ipkeeper.api.replies import (
    Applied,
    DependencyCreated,
    DependencyRemoved,
    Extended,
    InServiceResult,
    OutOfServiceResult,
    Unextended,
)
from ipkeeper.api.schemas import PEERS, Apply, Dependency, Extend, InService, Unextend, errors
from ipkeeper.engine import admin, apply, extend, moves

router = APIRouter(
    prefix="/api/v1", tags=["hierarchy"], dependencies=DOCUMENTED, route_class=ReplyRoute
)


@router.post(
    "/resources/{tag}/in-service",
    operation_id="bringInService",
    summary="Bring a hierarchy in service",
    response_model=InServiceResult,
    responses=errors(404, 409, *PEERS),
)
async def post_in_service(engine: EngineDep, tag: TagPath, body: InService) -> dict[str, Any]:
    """Bring the whole hierarchy in service on a server (default here), moving it there (R24)."""
    return await moves.in_service(engine, tag, body.server)


@router.post(
    "/resources/{tag}/out-of-service",
    operation_id="takeOutOfService",
    summary="Take a hierarchy out of service",
    response_model=OutOfServiceResult,
    responses=errors(404, *PEERS),
)
async def post_out_of_service(engine: EngineDep, tag: TagPath) -> dict[str, Any]:
    """Take the whole hierarchy out of service wherever it is, parents first (R24)."""
    return await moves.out_of_service(engine, tag)


@router.post(
    "/dependencies",
    status_code=201,
    operation_id="createDependency",
    summary="Create a dependency",
    response_model=DependencyCreated,
    responses=errors(404, 409, *PEERS),
)
async def post_dependency(engine: EngineDep, body: Dependency) -> dict[str, Any]:
    """Make PARENT depend on CHILD on every server where both are extended (R21)."""
    return await admin.depend(engine, body.parent, body.child)


@router.delete(
    "/dependencies/{parent}/{child}",
    operation_id="deleteDependency",
    summary="Delete a dependency",
    response_model=DependencyRemoved,
    responses=errors(404, 409, *PEERS),
)
async def delete_dependency(engine: EngineDep, parent: TagPath, child: TagPath) -> dict[str, Any]:
    """Remove the dependency of PARENT on CHILD (R21)."""
    return await admin.undepend(engine, parent, child)


@router.post(
    "/resources/{tag}/extend",
    operation_id="extendHierarchy",
    summary="Extend a hierarchy to a server",
    response_model=Extended,
    responses=errors(404, 409, *PEERS),
)
async def post_extend(engine: EngineDep, tag: TagPath, body: Extend) -> dict[str, Any]:
    """Extend the hierarchy from its template (the server where it is in service) to a target (R18)."""
    return await extend.extend_from_holder(engine, tag, **body.model_dump())


@router.post(
    "/apply",
    operation_id="applyDocument",
    summary="Apply a document of resources",
    response_model=Applied,
    responses=errors(409, *PEERS),
)
async def post_apply(engine: EngineDep, body: Apply) -> dict[str, Any]:
    """Create, extend and relate what a document describes, only the difference, in batches;
    a document with one bad entry changes nothing and names the entry."""
    return await apply.apply(engine, body.document, body.dry_run)


@router.post(
    "/resources/{tag}/unextend",
    operation_id="unextendHierarchy",
    summary="Remove a hierarchy from a server",
    response_model=Unextended,
    responses=errors(404, 409, *PEERS),
)
async def post_unextend(engine: EngineDep, tag: TagPath, body: Unextend) -> dict[str, Any]:
    """Remove the hierarchy from one server; refused where it is in service (R19)."""
    return await extend.unextend(engine, tag, body.server)
