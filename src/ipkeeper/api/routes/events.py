"""The event log (R29): this server's as a page and as a live stream, and the
cluster's history (every server's events merged by time)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from pydantic import StringConstraints

from ipkeeper.api.deps import DOCUMENTED, AfterQuery, EngineDep, ReplyRoute
from ipkeeper.api.replies import Events, History
from ipkeeper.api.schemas import TAG_HELP, errors, json_errors
from ipkeeper.engine import history
from ipkeeper.engine.core import Engine

router = APIRouter(
    prefix="/api/v1", tags=["events"], dependencies=DOCUMENTED, route_class=ReplyRoute
)

Limit = Annotated[
    int, Query(ge=1, le=history.MAX_LIMIT, description="at most this many, the newest")
]
TagFilter = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=63,
        description=f"only this resource's events ({TAG_HELP})",
        examples=["ip-198.18.0.50"],
    ),
]
Name = Annotated[str, StringConstraints(min_length=1, max_length=63)]


class EventStream(StreamingResponse):
    """Server-sent events."""

    media_type = "text/event-stream"


@router.get(
    "/events",
    operation_id="listEvents",
    summary="This server's events",
    response_model=Events,
    responses=errors(),
)
async def get_events(
    engine: EngineDep, limit: Limit = 50, after: AfterQuery = 0, tag: TagFilter = None
) -> dict[str, Any]:
    """The last LIMIT events of this server after id AFTER, oldest first."""
    return {"events": [e.as_dict() for e in engine.events.recent(limit, after, tag)]}


@router.get(
    "/events/stream",
    operation_id="streamEvents",
    summary="This server's events, live",
    response_class=EventStream,
    responses={
        200: {
            "description": "`id: N` and `data: <event as JSON>` for each event, and a comment every 15 s when idle",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        **json_errors(),
    },
)
async def stream_events(engine: EngineDep, after: AfterQuery = 0) -> EventStream:
    """New events of this server as server-sent events, as they happen."""
    return EventStream(event_stream(engine, after))


async def event_stream(engine: Engine, after: int) -> AsyncIterator[str]:
    """Server-sent events from id `after` on, with a keep-alive comment when idle."""
    events = engine.events
    last = after
    while True:
        batch = events.recent(1000, last)
        for event in batch:
            last = event.id
            yield f"id: {event.id}\ndata: {json.dumps(event.as_dict(), default=str)}\n\n"
        if not batch:
            await events.wait(15.0)
            if not events.recent(1, last):
                yield ": keep-alive\n\n"


@router.get(
    "/history",
    operation_id="getHistory",
    summary="The cluster's events",
    response_model=History,
    responses=errors(404),
)
async def get_history(
    engine: EngineDep,
    limit: Limit = 200,
    since: Annotated[
        float | None,
        Query(ge=0, description="only events at or after this Unix time", allow_inf_nan=False),
    ] = None,
    tag: TagFilter = None,
    kind: Annotated[
        list[Name],
        Query(max_length=32, description="only events of these kinds", examples=[["failover"]]),
    ] = [],  # noqa: B006 (FastAPI copies defaults)
    server: Annotated[
        list[Name],
        Query(max_length=32, description="only these servers' events; default: every server"),
    ] = [],  # noqa: B006
) -> dict[str, Any]:
    """Every server's events (or those asked for), merged by time, oldest first; a server
    that does not answer is listed in `unreachable` and the others' events still come back."""
    query = history.HistoryQuery(limit, since, tag, tuple(kind))
    return await history.gather(engine, query, list(server) or None)
