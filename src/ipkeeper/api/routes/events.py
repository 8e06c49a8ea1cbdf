"""The event log (R29), as a page and as a live stream."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from ipkeeper.api.deps import DOCUMENTED, AfterQuery, EngineDep
from ipkeeper.api.schemas import ERRORS
from ipkeeper.engine.core import Engine

router = APIRouter(
    prefix="/api/v1/events", tags=["events"], dependencies=DOCUMENTED, responses=ERRORS
)


@router.get("")
async def get_events(
    engine: EngineDep,
    limit: Annotated[int, Query(ge=1, le=10000)] = 50,
    after: AfterQuery = 0,
    tag: Annotated[str | None, Query(min_length=1, max_length=63)] = None,
) -> dict[str, Any]:
    """The last LIMIT events after id AFTER, oldest first."""
    return {"events": [e.as_dict() for e in engine.events.recent(limit, after, tag)]}


@router.get("/stream")
async def stream_events(engine: EngineDep, after: AfterQuery = 0) -> StreamingResponse:
    """New events as server-sent events, as they happen."""
    return StreamingResponse(event_stream(engine, after), media_type="text/event-stream")


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
