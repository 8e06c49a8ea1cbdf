"""Strict input at the door of the API: body size, JSON nesting, duplicate keys and headers.

Checked before any route sees the request, on every listener (the Unix
socket included, so the CLI meets the same rules): a body larger than
MAX_BODY is refused (413) before it is read in full; a JSON body must be
UTF-8, standard JSON (no NaN or Infinity), nested at most MAX_DEPTH levels
(checked before it is parsed) and without a key twice in one object; a
request must not repeat a header that can only have one value. Every refusal
is a 400 naming the field and the reason.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ipkeeper.api.refusals import error_reply

MAX_BODY = 64 * 1024
MAX_DEPTH = 32
SINGLE_HEADERS = (b"authorization", b"content-type", b"content-length", b"host")


class InputError(ValueError):
    """A request body that is refused, with the reason."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise InputError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise InputError(f"{name} is not JSON")


def nesting(text: str) -> int:
    """The deepest nesting of arrays and objects in JSON `text` (strings skipped)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def check_json(body: bytes) -> Any:
    """The parsed body, or InputError: not UTF-8, too deep, not JSON, or a duplicate key."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError("not UTF-8") from None
    # Few brackets cannot nest deeply: the character scan is only for the rest.
    if text.count("[") + text.count("{") > MAX_DEPTH and nesting(text) > MAX_DEPTH:
        raise InputError(f"nested deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except InputError:
        raise
    except ValueError as exc:
        raise InputError(f"not valid JSON ({exc})") from None


def is_json(content_type: bytes | None) -> bool:
    """True for the bodies FastAPI would parse as JSON (no type, or */json, */*+json)."""
    if not content_type:
        return True
    main = content_type.split(b";")[0].strip().lower()
    return main.endswith(b"/json") or main.endswith(b"+json")


class StrictInput:
    """ASGI middleware enforcing the rules of this module."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse the request, or pass it on with its body already checked."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: dict[bytes, list[bytes]] = {}
        for key, value in scope.get("headers", []):
            headers.setdefault(key.lower(), []).append(value)
        for name in SINGLE_HEADERS:
            if len(headers.get(name, [])) > 1:
                await error_reply(send, 400, name.decode(), f"more than one {name.decode()} header")
                return
        length = headers.get(b"content-length", [b""])[0]
        if length.isdigit() and int(length) > MAX_BODY:
            await error_reply(send, 413, "body", f"larger than {MAX_BODY} bytes")
            return
        if not length.isdigit() and b"transfer-encoding" not in headers:
            await self.app(scope, receive, send)  # no body: nothing to read (event streams)
            return
        body = await self._read(receive)
        if body is None:
            await error_reply(send, 413, "body", f"larger than {MAX_BODY} bytes")
            return
        if body and is_json(headers.get(b"content-type", [None])[0]):
            try:
                check_json(body)
            except InputError as exc:
                await error_reply(send, 400, "body", str(exc))
                return
        await self.app(scope, _replay(body, receive), send)

    @staticmethod
    async def _read(receive: Receive) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
