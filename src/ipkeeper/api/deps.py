"""What every route needs: the engine of this daemon, its bounded parameters, its route class."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request, Security
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer

from ipkeeper.api.auth import READ_METHODS
from ipkeeper.api.schemas import MAX_ID, TAG_HELP
from ipkeeper.engine import storewatch
from ipkeeper.engine.core import Engine


def get_engine(request: Request) -> Engine:
    """The engine the app was created with."""
    engine: Engine = request.app.state.engine
    return engine


EngineDep = Annotated[Engine, Depends(get_engine)]

# Documents the TCP API's bearer token in the OpenAPI document ("Authorize" in
# /api/docs); api/auth.py is what enforces it.
bearer = HTTPBearer(
    auto_error=False,
    description="a token of the daemon's admin token file (every operation) or of its "
    "viewer token file (reading only: the operations marked `viewer`)",
)
DOCUMENTED = [Security(bearer)]

# Path and query parameters, bounded like the bodies (api/schemas.py), with examples
# that name what the lab and the documentation's examples have.
TagPath = Annotated[
    str,
    Path(min_length=1, max_length=63, description=TAG_HELP, examples=["ip-198.18.0.50"]),
]
ServerQuery = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=63,
        description="the server to act on or ask; default: this one",
        examples=["s2"],
    ),
]
AfterQuery = Annotated[
    int,
    Query(ge=0, le=MAX_ID, description="an event id: only events with a larger one (per server)"),
]


class ReplyRoute(APIRoute):
    """A route whose reply model leaves out the fields the engine did not set, so that a
    reply is what the engine said (the status object keeps its shape) and no more.

    An operation that changes anything is refused (503, field `store`) while this
    server's disk refuses writes, once its request is found valid (engine/storewatch.py).
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        kwargs["response_model_exclude_unset"] = True
        if any(m.upper() not in READ_METHODS for m in kwargs.get("methods") or ()):
            endpoint = _refused_while_unwritable(endpoint)
        super().__init__(path, endpoint, **kwargs)


def _refused_while_unwritable(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """`endpoint`, first refusing while the disk refuses writes (FastAPI reads the
    parameters of the function it wraps)."""

    @functools.wraps(endpoint)
    async def guarded(*args: Any, **kwargs: Any) -> Any:
        for value in kwargs.values():
            if isinstance(value, Engine):
                storewatch.refuse_changes(value)
        return await endpoint(*args, **kwargs)

    return guarded
