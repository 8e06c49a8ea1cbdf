"""The daemon's HTTP API (R27): FastAPI, every route under /api/v1, errors as JSON.

Routes validate the request and ask the engine; they never touch the store
or the kernel themselves. An error body is {"error": {"field", "reason"}}.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute

from ipkeeper import __version__
from ipkeeper.api.routes import events, hierarchy, resources, status
from ipkeeper.engine.core import Engine
from ipkeeper.engine.errors import OpError
from ipkeeper.web import STATIC

log = logging.getLogger("ipkeeper.api")


def error_body(field: str, reason: str) -> dict[str, Any]:
    """The JSON of an error response."""
    return {"error": {"field": field, "reason": reason}}


async def _op_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, OpError)
    return JSONResponse(error_body(exc.field, exc.reason), status_code=exc.status)


async def _invalid(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0]
    loc = [
        str(p)
        for p in first.get("loc", ())
        if p not in ("body", "query", "path") and not isinstance(p, int)
    ]
    return JSONResponse(
        error_body(".".join(loc) or "request", first.get("msg", "invalid")), status_code=422
    )


def _matching(routes: Iterable[BaseRoute], path: str) -> Iterator[tuple[int, set[str]]]:
    """(number of path parameters, methods) of every route whose template matches `path`."""
    for route in routes:
        included = getattr(route, "original_router", None)  # a router inside the app
        if included is not None:
            yield from _matching(included.routes, path)
            continue
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(path):
            params = len(getattr(route, "param_convertors", {}))
            yield params, set(getattr(route, "methods", None) or ())


def allowed_methods(routes: Iterable[BaseRoute], path: str) -> set[str]:
    """Every method the path takes, as OpenAPI reads paths: a concrete path
    (/resources/ip) before a template that also matches it (/resources/{tag}).
    Starlette's 405 names only the first route's methods, and FastAPI makes one
    route per method, hence this."""
    found = list(_matching(routes, path))
    fewest = min((params for params, _ in found), default=0)
    return {m for params, methods in found if params == fewest for m in methods}


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    reasons = {404: "no such route", 405: "method not allowed on this route"}
    reason = reasons.get(exc.status_code, str(exc.detail))
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(sorted(allowed_methods(request.app.routes, request.url.path)))
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
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/api/v1/openapi.json",
    )
    app.state.engine = engine
    app.add_exception_handler(OpError, _op_error)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
    for module in (status, resources, hierarchy, events):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def gui() -> FileResponse:
        """The web GUI (R28)."""
        return FileResponse(STATIC / "index.html")

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        """Prometheus metrics (R33)."""
        return Response(engine.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return app
