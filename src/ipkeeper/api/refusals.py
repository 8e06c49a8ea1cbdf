"""Answers given by the API's middleware itself, in the API's error shape."""

from __future__ import annotations

import json

from starlette.types import Send

Headers = list[tuple[bytes, bytes]]


def error_json(field: str, reason: str) -> bytes:
    """The body of an error answer: {"error": {"field": ..., "reason": ...}}."""
    return json.dumps({"error": {"field": field, "reason": reason}}).encode()


async def error_reply(
    send: Send, status: int, field: str, reason: str, headers: Headers | None = None
) -> None:
    """Answer the request with `status` and an error naming `field` and `reason`."""
    body = error_json(field, reason)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
