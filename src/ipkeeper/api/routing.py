"""What a path allows: the `Allow` header of a 405.

Starlette answers 405 from the first route whose path matches, so a path
served by several routes (GET and DELETE /resources/{tag}) would name only
one method; this asks every route about every method, static files included
(GET and HEAD). A concrete path is read as OpenAPI reads it, before a
template that also matches it: /resources/ip takes POST, though the template
/resources/{tag} would serve a GET there, so its Allow is POST (and
schemathesis checks that Allow lists exactly the methods the document gives
the path).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from starlette.routing import BaseRoute, Match, Mount
from starlette.types import ASGIApp, Scope

METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def _flat(routes: Iterable[BaseRoute], path: str) -> Iterator[tuple[BaseRoute, str]]:
    """Every route, with the path it would see, through FastAPI's included routers."""
    for route in routes:
        included = getattr(route, "original_router", None)  # a router inside the app
        if included is None:
            yield route, path
            continue
        prefix = getattr(getattr(route, "include_context", None), "prefix", "") or ""
        if path.startswith(prefix):
            yield from _flat(included.routes, path[len(prefix) :] or "/")


def allowed_methods(app: ASGIApp, scope: Scope) -> list[str]:
    """Every method served at the path of `scope` by the routes of `app` with the fewest
    path parameters among those whose path matches it, sorted."""
    # Inside a mount, root_path names the mount: ask from the application's root.
    root = scope.get("app_root_path", scope.get("root_path", ""))
    served: list[tuple[int, str]] = []
    fewest: int | None = None
    for route, path in _flat(getattr(app, "routes", []), scope["path"]):
        params = len(getattr(route, "param_convertors", {}))
        for method in METHODS:
            probe = {**scope, "type": "http", "method": method, "root_path": root, "path": path}
            match = route.matches(probe)[0]
            if match is Match.NONE:
                continue
            fewest = params if fewest is None else min(fewest, params)
            # A mount matches any method; ours serves static files: GET and HEAD.
            serves = not isinstance(route, Mount) or method in ("GET", "HEAD")
            if serves and match is Match.FULL:
                served.append((params, method))
    return sorted({method for params, method in served if params == fewest})
