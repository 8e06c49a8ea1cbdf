"""Creating, showing, changing and deleting resources."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path

from ipkeeper.api.deps import DOCUMENTED, EngineDep, ReplyRoute, ServerQuery, TagPath
from ipkeeper.api.replies import Created, Deleted, PingList, Properties, SettingChanged
from ipkeeper.api.schemas import (
    PEERS,
    CreateApp,
    CreateGroup,
    CreateIP,
    PingListChange,
    Setting,
    errors,
)
from ipkeeper.engine import admin, create, moves, views
from ipkeeper.engine.core import Engine

router = APIRouter(
    prefix="/api/v1/resources", tags=["resources"], dependencies=DOCUMENTED, route_class=ReplyRoute
)

SettingKey = Annotated[
    Literal["source-address", "restore-recover", "broadcast-ping", "switchback"],
    Path(
        description="source-address (yes|no), restore-recover (enable|disable), "
        "broadcast-ping (yes|no), switchback (intelligent|automatic)",
        examples=["source-address"],
    ),
]


@router.post(
    "/ip",
    status_code=201,
    operation_id="createIpResource",
    summary="Create an IP resource",
    response_model=Created,
    responses=errors(404, 409, *PEERS),
)
async def post_ip(engine: EngineDep, body: CreateIP) -> dict[str, Any]:
    """Create an IP resource on a server (default: this one) and bring it in service there
    (R17), optionally with the subnet's ping list (R13)."""
    return await create.create_on(engine, body.server, "ip", body.model_dump(exclude={"server"}))


@router.post(
    "/app",
    status_code=201,
    operation_id="createAppResource",
    summary="Create an application resource",
    response_model=Created,
    responses=errors(404, 409, *PEERS),
)
async def post_app(engine: EngineDep, body: CreateApp) -> dict[str, Any]:
    """Create an application resource run by your own commands on a server (default: this
    one), and bring it in service there."""
    return await create.create_on(engine, body.server, "app", body.model_dump(exclude={"server"}))


@router.post(
    "/group",
    status_code=201,
    operation_id="createGroupResource",
    summary="Create a group resource",
    response_model=Created,
    responses=errors(404, 409, *PEERS),
)
async def post_group(engine: EngineDep, body: CreateGroup) -> dict[str, Any]:
    """Create a group on a server (default: this one): a resource that does nothing itself
    and moves its children as one."""
    return await create.create_on(engine, body.server, "group", body.model_dump(exclude={"server"}))


@router.get(
    "/{tag}",
    operation_id="getResource",
    summary="Properties of a resource",
    response_model=Properties,
    responses=errors(404, *PEERS),
)
async def get_resource(
    engine: EngineDep, tag: TagPath, server: ServerQuery = None
) -> dict[str, Any]:
    """Every property of a resource on a server (R12), asked of that server."""
    if server is not None and server != engine.server:
        return await engine.peers.request(server, "show", {"tag": tag})
    return await views.show(engine, tag)


@router.delete(
    "/{tag}",
    operation_id="deleteResource",
    summary="Delete a resource everywhere",
    response_model=Deleted,
    responses=errors(404, 409, *PEERS),
)
async def delete_resource(engine: EngineDep, tag: TagPath) -> dict[str, Any]:
    """Delete a resource and what depends on it from every server, out of service first (R20)."""
    return await moves.delete(engine, tag)


@router.put(
    "/{tag}/settings/{key}",
    operation_id="changeSetting",
    summary="Change a setting",
    response_model=SettingChanged,
    responses=errors(404, 409, *PEERS),
)
async def put_setting(
    engine: EngineDep, tag: TagPath, key: SettingKey, body: Setting, server: ServerQuery = None
) -> dict[str, Any]:
    """source-address yes|no, restore-recover enable|disable, broadcast-ping yes|no (per server),
    switchback intelligent|automatic."""
    if server is not None and server != engine.server:
        return await engine.peers.request(
            server, "setting", {"tag": tag, "key": key, "value": body.value}
        )
    return await admin.set_setting(engine, tag, key, body.value)


@router.get(
    "/{tag}/pinglist",
    operation_id="getPingList",
    summary="A server's ping list",
    response_model=PingList,
    responses=errors(404, 409, *PEERS),
)
async def get_pinglist(
    engine: EngineDep, tag: TagPath, server: ServerQuery = None
) -> dict[str, Any]:
    """A server's ping list for the resource's subnet (R13); default this server's."""
    return await _pinglist(engine, tag, None, [], server)


@router.post(
    "/{tag}/pinglist",
    operation_id="changePingList",
    summary="Edit a server's ping list",
    response_model=PingList,
    responses=errors(404, 409, *PEERS),
)
async def post_pinglist(
    engine: EngineDep, tag: TagPath, body: PingListChange, server: ServerQuery = None
) -> dict[str, Any]:
    """Add to, remove from or clear a server's ping list for the resource's subnet (R13)."""
    return await _pinglist(engine, tag, body.verb, body.addresses, server)


async def _pinglist(
    engine: Engine, tag: str, verb: str | None, addresses: list[str], server: str | None
) -> dict[str, Any]:
    if server is not None and server != engine.server:
        params = {"tag": tag, "verb": verb, "addresses": addresses}
        return await engine.peers.request(server, "pinglist", params)
    return await admin.pinglist(engine, tag, verb, addresses)
