"""What every route needs: the engine of this daemon."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
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
