"""Bearer tokens and roles for the API over TCP (R27, R30).

Every request to /api/ (but the OpenAPI document and its viewer) and to
/metrics must carry exactly one `Authorization: Bearer <token>`. A token is
found in the admin token file or the viewer token file; tokens are compared
in constant time. A `viewer` may read (GET and HEAD: status, events,
properties, ping lists, tunables, interfaces, metrics); everything that
changes anything needs `admin`, since any change can run an application
resource's commands as root (create, extend, in service) or define them.
The GUI's page and static files are public: they hold no data and ask for
the token. The Unix socket needs no token: it is root-only.

A token file holds one token per line (at least 16 characters; `#` starts a
comment), so a token can be rotated without downtime: add the new line, move
the clients over, remove the old line. Files are re-read when they change;
one that becomes unusable (say, readable by others) grants nothing until it
is fixed.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Callable
from enum import IntEnum
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from ipkeeper.api.refusals import error_reply
from ipkeeper.api.throttle import FailureGuard
from ipkeeper.config.secrets import SecretFileError, check_private
from ipkeeper.config.watched import Watched

PUBLIC = ("/api/v1/openapi.json", "/api/docs")
MIN_TOKEN = 16
READ_METHODS = frozenset({"GET", "HEAD"})

TokenFileError = SecretFileError


class Role(IntEnum):
    """What a token may do; a higher role may do all that a lower one may."""

    viewer = 1
    admin = 2


def required_role(method: str) -> Role:
    """The role an API operation needs: reading is `viewer`, anything else `admin`."""
    return Role.viewer if method.upper() in READ_METHODS else Role.admin


def document_roles(schema: dict[str, Any]) -> dict[str, Any]:
    """Say in the OpenAPI document which role each operation needs (`x-ipkeeper-role`, the
    first words of its description, and a 403 answer where a viewer token is refused); the
    same rule as the one enforced."""
    for operations in schema.get("paths", {}).values():
        for method, operation in operations.items():
            role = required_role(method)
            what = "reading: a viewer or admin token" if role is Role.viewer else "an admin token"
            operation["x-ipkeeper-role"] = role.name
            text = operation.get("description", "")
            operation["description"] = f"Role: **{role.name}** ({what}). {text}".strip()
            if role is Role.admin:
                responses = operation.setdefault("responses", {})
                responses["403"] = FORBIDDEN
                operation["responses"] = dict(sorted(responses.items()))
    return schema


FORBIDDEN = {
    "description": "a viewer token: this operation needs the admin role (API over TCP)",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
}


def needs_token(path: str) -> bool:
    """True for the routes that expose or change anything."""
    if path in PUBLIC:
        return False
    return path.startswith("/api/") or path == "/metrics"


def read_tokens(path: Path) -> frozenset[bytes]:
    """The tokens of a token file (one per line), private to the daemon's user or refused."""
    check_private(path)
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenFileError(f"{path}: {getattr(exc, 'strerror', None) or exc}") from None
    tokens = set()
    for number, raw in enumerate(lines, start=1):
        token = raw.split("#", 1)[0].strip()
        if not token:
            continue
        if len(token) < MIN_TOKEN or any(c.isspace() for c in token):
            raise TokenFileError(
                f"{path}: line {number}: a token is at least {MIN_TOKEN} characters, no spaces"
            )
        tokens.add(token.encode())
    if not tokens:
        raise TokenFileError(f"{path}: no token in it")
    return frozenset(tokens)


def load_token(path: Path) -> str:
    """The first token of a token file (for clients such as the CLI)."""
    return sorted(read_tokens(path))[0].decode()


class Credentials:
    """The tokens of each role, kept in step with their files."""

    def __init__(self, files: dict[Role, Watched[frozenset[bytes]] | frozenset[bytes]]) -> None:
        self._files = files

    @classmethod
    def load(
        cls, admin: Path, viewer: Path | None, on_error: Callable[[str], None] | None = None
    ) -> Credentials:
        """Credentials from token files (TokenFileError now if one cannot be used)."""
        files: dict[Role, Watched[frozenset[bytes]] | frozenset[bytes]] = {}
        for role, path in ((Role.admin, admin), (Role.viewer, viewer)):
            if path is not None:
                files[role] = Watched(path, read_tokens, on_error, fallback=lambda _: frozenset())
        return cls(files)

    @classmethod
    def fixed(cls, admin: str, viewer: str | None = None) -> Credentials:
        """Credentials of given tokens (tests)."""
        files: dict[Role, Watched[frozenset[bytes]] | frozenset[bytes]] = {
            Role.admin: frozenset({admin.encode()})
        }
        if viewer is not None:
            files[Role.viewer] = frozenset({viewer.encode()})
        return cls(files)

    def roles(self) -> list[str]:
        """The roles a token can be given for, highest first."""
        return [role.name for role in sorted(self._files, reverse=True)]

    def role_of(self, given: bytes) -> Role | None:
        """The highest role `given` is a token of, or None; every token is compared."""
        found: Role | None = None
        for role, source in self._files.items():
            tokens = source.get() if isinstance(source, Watched) else source
            for token in tokens:
                if hmac.compare_digest(given, token) and (found is None or role > found):
                    found = role
        return found


def source_of(scope: Scope) -> str:
    """Who is asking, for counting failures: the client's address (an IPv6 client by its
    /64, since one host may use any address of it)."""
    client = scope.get("client")
    if not client:
        return "unknown"
    host = str(client[0])
    try:
        address = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


class BearerAuth:
    """ASGI middleware: the token, its role, and the failure count of the source.

    400 for more than one Authorization header, 401 for a missing or wrong
    token, 403 for a valid token without the role, 429 for a source that has
    failed too often (answered before any token is looked at).
    """

    def __init__(self, app: ASGIApp, credentials: Credentials, guard: FailureGuard) -> None:
        self.app = app
        self.credentials = credentials
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on with its role in scope["state"], or answer it."""
        if scope["type"] != "http" or not needs_token(scope["path"]):
            await self.app(scope, receive, send)
            return
        source = source_of(scope)
        wait = self.guard.refused(source)
        if wait is not None:
            reason = f"too many failed authentications from {source}; try again in {wait:.0f} s"
            retry = str(max(1, round(wait))).encode()
            await error_reply(send, 429, "authorization", reason, [(b"retry-after", retry)])
            return
        given = [v for k, v in scope.get("headers", []) if k.lower() == b"authorization"]
        if len(given) > 1:
            await error_reply(send, 400, "authorization", "more than one Authorization header")
            return
        scheme, _, value = (given[0] if given else b"").partition(b" ")
        role = self.credentials.role_of(value.strip()) if scheme.lower() == b"bearer" else None
        if role is None:
            reason = "missing bearer token" if not given else "wrong token"
            self.guard.failed(source, "missing" if not given else "wrong")
            challenge = [(b"www-authenticate", b'Bearer realm="ipkeeper"')]
            await error_reply(send, 401, "authorization", reason, challenge)
            return
        need = required_role(scope["method"])
        if role < need:
            reason = f"{scope['method']} needs the {need.name} role; this is a {role.name} token"
            await error_reply(send, 403, "authorization", reason)
            return
        scope.setdefault("state", {})["role"] = role.name
        await self.app(scope, receive, send)
