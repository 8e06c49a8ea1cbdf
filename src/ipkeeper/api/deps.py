"""What every route needs: the engine of this daemon."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ipkeeper.engine.core import Engine


def get_engine(request: Request) -> Engine:
    """The engine the app was created with."""
    engine: Engine = request.app.state.engine
    return engine


EngineDep = Annotated[Engine, Depends(get_engine)]
