"""What every route needs: the engine of this daemon."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer

from ipkeeper.engine.core import Engine


def get_engine(request: Request) -> Engine:
    """The engine the app was created with."""
    engine: Engine = request.app.state.engine
    return engine


EngineDep = Annotated[Engine, Depends(get_engine)]

# Documents the TCP API's bearer token in the OpenAPI document ("Authorize" in
# /api/docs); api/auth.py is what enforces it.
bearer = HTTPBearer(auto_error=False, description="the contents of the daemon's API token file")
DOCUMENTED = [Security(bearer)]


class ReplyRoute(APIRoute):
    """A route whose reply model leaves out the fields the engine did not set, so that a
    reply is what the engine said (the status object keeps its shape) and no more."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        kwargs["response_model_exclude_unset"] = True
        super().__init__(path, endpoint, **kwargs)
