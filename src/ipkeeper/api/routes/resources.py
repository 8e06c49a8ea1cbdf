"""Creating, showing, changing and deleting resources."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ipkeeper.api.deps import EngineDep
from ipkeeper.api.schemas import CreateApp, CreateIP, PingListChange, Setting
from ipkeeper.engine import admin, create, moves, views

router = APIRouter(prefix="/api/v1/resources", tags=["resources"])


@router.post("/ip", status_code=201)
async def post_ip(engine: EngineDep, body: CreateIP) -> dict[str, Any]:
    """Create an IP resource here and bring it in service (R17)."""
    return await create.create_ip(engine, **body.model_dump())


@router.post("/app", status_code=201)
async def post_app(engine: EngineDep, body: CreateApp) -> dict[str, Any]:
    """Create an application resource here and bring it in service."""
    return await create.create_app(engine, **body.model_dump())


@router.get("/{tag}")
async def get_resource(engine: EngineDep, tag: str, server: str | None = None) -> dict[str, Any]:
    """Every property of a resource on a server (R12), asked of that server."""
    if server is not None and server != engine.server:
        return await engine.peers.request(server, "show", {"tag": tag})
    return views.show(engine, tag)


@router.delete("/{tag}")
async def delete_resource(engine: EngineDep, tag: str) -> dict[str, Any]:
    """Delete a resource and what depends on it (R20)."""
    return await moves.delete(engine, tag)


@router.put("/{tag}/settings/{key}")
async def put_setting(engine: EngineDep, tag: str, key: str, body: Setting) -> dict[str, Any]:
    """source-address yes|no, restore-recover enable|disable, switchback intelligent|automatic."""
    return await admin.set_setting(engine, tag, key, body.value)


@router.get("/{tag}/pinglist")
async def get_pinglist(engine: EngineDep, tag: str) -> dict[str, Any]:
    """This server's ping list for the resource's subnet (R13)."""
    return await admin.pinglist(engine, tag, None, [])


@router.post("/{tag}/pinglist")
async def post_pinglist(engine: EngineDep, tag: str, body: PingListChange) -> dict[str, Any]:
    """Add to, remove from or clear the ping list (R13)."""
    return await admin.pinglist(engine, tag, body.verb, body.addresses)
