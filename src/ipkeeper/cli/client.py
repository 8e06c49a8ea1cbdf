"""The CLI's only way to the daemon: its HTTP API over the local Unix socket."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx

from ipkeeper.cli.output import fail

DEFAULT_SOCKET = "/run/ipkeeper/api.sock"


def segment(text: str) -> str:
    """`text` made safe as one segment of a URL path (a tag may hold '?', '#', ':' ...)."""
    return quote(text, safe="")


def socket_path(option: str | None) -> str:
    """--socket, else IPKEEPER_SOCKET, else the default path."""
    return option or os.environ.get("IPKEEPER_SOCKET") or DEFAULT_SOCKET


class Client:
    """Typed calls to one daemon; errors become one-line CLI errors (exit 1)."""

    def __init__(self, socket: str, timeout: float = 600.0) -> None:
        self.socket = socket
        self.http = httpx.Client(
            transport=httpx.HTTPTransport(uds=socket),
            base_url="http://ipkeeperd",
            timeout=httpx.Timeout(timeout, connect=5.0),
        )

    def _unreachable(self, exc: Exception) -> None:
        fail(
            "daemon",
            f"no ipkeeperd answers on {self.socket} ({exc}); is it running? (--socket, IPKEEPER_SOCKET)",
        )

    def call(
        self, method: str, path: str, body: dict[str, Any] | None = None, **params: Any
    ) -> dict[str, Any]:
        """Make one request and return its JSON, or fail with the daemon's field and reason."""
        query = {k: v for k, v in params.items() if v is not None}
        try:
            response = self.http.request(method, f"/api/v1{path}", json=body, params=query)
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
            self._unreachable(exc)
            raise
        try:
            data: dict[str, Any] = response.json() if response.content else {}
        except ValueError:
            data = {
                "error": {
                    "field": "daemon",
                    "reason": f"HTTP {response.status_code}: {response.text[:200].strip()}",
                }
            }
        if response.status_code >= 400:
            error = data.get("error") or {
                "field": "daemon",
                "reason": f"HTTP {response.status_code}",
            }
            fail(error.get("field", "daemon"), error.get("reason", "failed"))
        return data

    def stream(self, path: str, **params: Any) -> Iterator[dict[str, Any]]:
        """Follow a server-sent event stream, yielding each event's data."""
        try:
            with self.http.stream("GET", f"/api/v1{path}", params=params, timeout=None) as response:
                for line in response.iter_lines():
                    if line.startswith("data: "):
                        yield json.loads(line[len("data: ") :])
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
            self._unreachable(exc)
