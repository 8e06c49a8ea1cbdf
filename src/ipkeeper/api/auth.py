"""Bearer-token authentication for the API over TCP (R27, R30).

Every request to /api/ (but the OpenAPI document and its viewer) and to
/metrics must carry `Authorization: Bearer <token>`; the token is compared in
constant time. The GUI's page and static files are public: they hold no data
and ask for the token. The Unix socket needs no token: it is root-only.
"""

from __future__ import annotations

import hmac
import json
from pathlib import Path

from starlette.types import ASGIApp, Receive, Scope, Send

from ipkeeper.config.secrets import SecretFileError, read_secret

PUBLIC = ("/api/v1/openapi.json", "/api/docs")


TokenFileError = SecretFileError


def load_token(path: Path) -> str:
    """The API token: at least 16 characters, in a file only its owner can read."""
    return read_secret(path, 16)


def needs_token(path: str) -> bool:
    """True for the routes that expose or change anything."""
    if path in PUBLIC:
        return False
    return path.startswith("/api/") or path == "/metrics"


class BearerAuth:
    """ASGI middleware: 401 with a JSON error for a missing or wrong token."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, or answer 401."""
        if scope["type"] != "http" or not needs_token(scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        given = headers.get(b"authorization", b"")
        scheme, _, value = given.partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(value.strip(), self.token):
            await self.app(scope, receive, send)
            return
        reason = "missing bearer token" if not given else "wrong token"
        body = json.dumps({"error": {"field": "authorization", "reason": reason}}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"www-authenticate", b'Bearer realm="ipkeeper"'),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
