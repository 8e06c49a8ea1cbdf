"""What every route needs: the engine of this daemon."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query, Request, Security
from fastapi.security import HTTPBearer

from ipkeeper.api.schemas import MAX_ID, TAG_HELP
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

# Path and query parameters, bounded like the bodies (api/schemas.py).
TagPath = Annotated[str, Path(min_length=1, max_length=63, description=TAG_HELP)]
ServerQuery = Annotated[
    str | None, Query(min_length=1, max_length=63, description="a server (default: this one)")
]
AfterQuery = Annotated[int, Query(ge=0, le=MAX_ID, description="an event id: only later ones")]
