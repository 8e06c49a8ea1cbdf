"""The CLI's only way to the daemon: its HTTP API over the local Unix socket.

Built on the standard library's http.client (an HTTP/1.1 connection over an
AF_UNIX socket) rather than an HTTP client package: `ipkeeper status` runs
often, from scripts and monitoring, and must start fast (bench/cli.py).
"""

from __future__ import annotations

import http.client
import json
import os
import socket
from typing import Any
from urllib.parse import quote, urlencode

from ipkeeper.cli.output import fail

DEFAULT_SOCKET = "/run/ipkeeper/api.sock"


def segment(text: str) -> str:
    """`text` made safe as one segment of a URL path (a tag may hold '?', '#', ':' ...)."""
    return quote(text, safe="")


def socket_path(option: str | None) -> str:
    """--socket, else IPKEEPER_SOCKET, else the default path."""
    return option or os.environ.get("IPKEEPER_SOCKET") or DEFAULT_SOCKET


class _UnixConnection(http.client.HTTPConnection):
    """HTTP/1.1 over a Unix socket; `timeout` bounds the connect and every read."""

    def __init__(self, path: str, timeout: float | None) -> None:
        super().__init__("ipkeeperd", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        """Connect to the daemon's socket instead of a TCP address."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class DaemonError(Exception):
    """The daemon refused a request: its field and reason (and the HTTP status)."""

    def __init__(self, field: str, reason: str, status: int) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
        self.status = status


def _query(params: dict[str, Any]) -> str:
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        for item in value if isinstance(value, list | tuple) else [value]:
            if item is not None:
                pairs.append((key, str(item)))
    return ("?" + urlencode(pairs)) if pairs else ""


def _error_of(status: int, body: bytes) -> DaemonError:
    try:
        error = json.loads(body).get("error") or {}
    except (ValueError, AttributeError):
        text = body[:200].decode(errors="replace").strip()
        return DaemonError("daemon", f"HTTP {status}: {text}", status)
    return DaemonError(
        str(error.get("field", "daemon")), str(error.get("reason", f"HTTP {status}")), status
    )


class Client:
    """Typed calls to one daemon; errors become one-line CLI errors (exit 1)."""

    def __init__(self, socket: str, timeout: float = 600.0) -> None:
        self.socket = socket
        self.timeout = timeout

    def _unreachable(self, exc: Exception) -> DaemonError:
        return DaemonError(
            "daemon",
            f"no ipkeeperd answers on {self.socket} ({exc}); is it running? (--socket, IPKEEPER_SOCKET)",
            0,
        )

    def request(
        self, method: str, path: str, body: dict[str, Any] | None = None, **params: Any
    ) -> dict[str, Any]:
        """Make one request and return its JSON; DaemonError when refused or unreachable."""
        connection = _UnixConnection(self.socket, self.timeout)
        headers = {"Accept": "application/json"}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            connection.request(method, f"/api/v1{path}{_query(params)}", payload, headers)
            response = connection.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise self._unreachable(exc) from None
        finally:
            connection.close()
        if response.status >= 400:
            raise _error_of(response.status, data)
        try:
            parsed = json.loads(data) if data else {}
        except ValueError:
            raise _error_of(response.status, data) from None
        return parsed if isinstance(parsed, dict) else {"result": parsed}

    def call(
        self, method: str, path: str, body: dict[str, Any] | None = None, **params: Any
    ) -> dict[str, Any]:
        """Make one request and return its JSON, or fail with the daemon's field and reason."""
        try:
            return self.request(method, path, body, **params)
        except DaemonError as exc:
            fail(exc.field, exc.reason)
