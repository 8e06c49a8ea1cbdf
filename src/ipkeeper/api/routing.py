"""What a path allows: the `Allow` header of a 405 lists every method of every route there.

Starlette answers 405 from the first route whose path matches, so a path
served by several routes (GET and DELETE /resources/{tag}) would name only
one method; this asks every route about every method.
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Match, Mount
from starlette.types import ASGIApp, Scope

METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def allowed_methods(app: ASGIApp, scope: Scope) -> list[str]:
    """Every method some route of `app` serves at the path of `scope`, sorted."""
    routes: list[BaseRoute] = list(getattr(app, "routes", []))
    allowed: set[str] = set()
    for method in METHODS:
        # Inside a mount, root_path names the mount: ask from the application's root.
        root = scope.get("app_root_path", scope.get("root_path", ""))
        probe = {**scope, "type": "http", "method": method, "root_path": root}
        for route in routes:
            # A mount matches any method; ours serves static files: GET and HEAD.
            serves = not isinstance(route, Mount) or method in ("GET", "HEAD")
            if serves and route.matches(probe)[0] is Match.FULL:
                allowed.add(method)
    return sorted(allowed)
