"""The daemon's HTTP API (R27): FastAPI, every route under /api/v1, errors as JSON.

Routes validate the request and ask the engine; they never touch the store
or the kernel themselves. An error body is {"error": {"field", "reason"}}.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException as StarletteHTTPException

from ipkeeper import __version__
from ipkeeper.api.auth import document_roles
from ipkeeper.api.docs import add_docs
from ipkeeper.api.routes import events, hierarchy, resources, status
from ipkeeper.api.routing import allowed_methods
from ipkeeper.api.validation import drop_generated_422, field_of, reason_of
from ipkeeper.engine.core import Engine
from ipkeeper.engine.errors import OpError, StoreUnavailable
from ipkeeper.web import STATIC

log = logging.getLogger("ipkeeper.api")


def error_body(field: str, reason: str) -> dict[str, Any]:
    """The JSON of an error response."""
    return {"error": {"field": field, "reason": reason}}


async def _op_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, OpError)
    return JSONResponse(error_body(exc.field, exc.reason), status_code=exc.status)


async def _store_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StoreUnavailable)
    return JSONResponse(error_body(exc.field, exc.reason), status_code=exc.status)


async def _invalid(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0]
    return JSONResponse(error_body(field_of(first), reason_of(first)), status_code=400)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    reasons = {404: "no such route", 405: "method not allowed on this route"}
    reason = reasons.get(exc.status_code, str(exc.detail))
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(allowed_methods(request.app, request.scope))
    return JSONResponse(error_body("request", reason), status_code=exc.status_code, headers=headers)


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error in the API")
    return JSONResponse(error_body("server", f"unexpected error: {exc}"), status_code=500)


def create_app(engine: Engine) -> FastAPI:
    """The API of this daemon, acting through `engine`."""
    app = FastAPI(
        title="ipkeeper",
        version=__version__,
        description="Keeps virtual IP addresses alive across a cluster of Linux servers.",
        docs_url=None,  # docs.py serves it with local assets
        redoc_url=None,
        openapi_url="/api/v1/openapi.json",
    )
    app.state.engine = engine
    app.add_exception_handler(OpError, _op_error)
    app.add_exception_handler(StoreUnavailable, _store_unavailable)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
    for module in (status, resources, hierarchy, events):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    generated = app.openapi

    def openapi() -> dict[str, Any]:
        return app.openapi_schema or document_roles(drop_generated_422(generated()))

    app.openapi = openapi  # type: ignore[method-assign]
    add_docs(app)

    @app.get("/", include_in_schema=False)
    async def gui() -> FileResponse:
        """The web GUI (R28)."""
        return FileResponse(STATIC / "index.html")

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        """Prometheus metrics (R33)."""
        return Response(engine.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return app
