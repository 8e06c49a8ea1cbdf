"""The CLI's only way to a daemon: its HTTP API, over the local Unix socket or, with
`--url`, over HTTPS with a token and a pinned certificate (cli/remote.py).

On the socket, a few lines of HTTP/1.1 (one request per connection,
`Connection: close`) rather than an HTTP client package or http.client,
which between them import ssl and the email parser: `ipkeeper status` runs
often, from scripts and monitoring, and must start fast (bench/cli.py). The
remote path loads ssl and httpx only when a URL is given.
"""

from __future__ import annotations

import json
import os
import socket
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from ipkeeper.cli.output import fail

if TYPE_CHECKING:
    from ipkeeper.cli.remote import Remote

DEFAULT_SOCKET = "/run/ipkeeper/api.sock"
MAX_REPLY = 64 * 1024 * 1024  # bytes: a reply this large is not the daemon's


def segment(text: str) -> str:
    """`text` made safe as one segment of a URL path (a tag may hold '?', '#', ':' ...)."""
    return quote(text, safe="")


def socket_path(option: str | None) -> str:
    """--socket, else IPKEEPER_SOCKET, else the default path."""
    return option or os.environ.get("IPKEEPER_SOCKET") or DEFAULT_SOCKET


class ProtocolError(Exception):
    """The answer was not HTTP as the daemon speaks it."""


def _dechunk(body: bytes) -> bytes:
    out = bytearray()
    while True:
        size_line, sep, rest = body.partition(b"\r\n")
        if not sep:
            raise ProtocolError("chunked body cut short")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return bytes(out)
        out += rest[:size]
        body = rest[size + 2 :]


def exchange(path: str, request: bytes, timeout: float | None) -> tuple[int, bytes]:
    """Send one HTTP request on the Unix socket at `path`; (status, body) of the answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(request)
        received = bytearray()
        while chunk := sock.recv(65536):
            received += chunk
            if len(received) > MAX_REPLY:
                raise ProtocolError("reply too large")
    head, sep, body = bytes(received).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if not sep or len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ProtocolError(f"not an HTTP answer: {lines[0][:80]!r}")
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = _dechunk(body)
    elif "content-length" in headers:
        body = body[: int(headers["content-length"])]
    return int(parts[1]), body


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
    """Typed calls to one daemon (the local socket, or `remote`); errors become one-line
    CLI errors (exit 1)."""

    def __init__(self, socket: str, timeout: float = 600.0, remote: Remote | None = None) -> None:
        self.socket = socket
        self.timeout = timeout
        self.remote = remote

    def _unreachable(self, exc: Exception) -> DaemonError:
        return DaemonError(
            "daemon",
            f"no ipkeeperd answers on {self.socket} ({exc}); is it running? "
            "(--socket, IPKEEPER_SOCKET, --url)",
            0,
        )

    def request(
        self, method: str, path: str, body: dict[str, Any] | None = None, **params: Any
    ) -> dict[str, Any]:
        """Make one request and return its JSON; DaemonError when refused or unreachable."""
        payload = b"" if body is None else json.dumps(body).encode()
        target = f"/api/v1{path}{_query(params)}"
        if self.remote is not None:
            status, data = self.remote.exchange(method, target, payload, self.timeout)
        else:
            head = [
                f"{method} {target} HTTP/1.1",
                "Host: ipkeeperd",
                "Accept: application/json",
                "Connection: close",
                f"Content-Length: {len(payload)}",
            ]
            if body is not None:
                head.append("Content-Type: application/json")
            request = ("\r\n".join(head) + "\r\n\r\n").encode() + payload
            try:
                status, data = exchange(self.socket, request, self.timeout)
            except (OSError, ProtocolError, ValueError) as exc:
                raise self._unreachable(exc) from None
        if status >= 400:
            raise _error_of(status, data)
        try:
            parsed = json.loads(data) if data else {}
        except ValueError:
            raise _error_of(status, data) from None
        return parsed if isinstance(parsed, dict) else {"result": parsed}

    def call(
        self, method: str, path: str, body: dict[str, Any] | None = None, **params: Any
    ) -> dict[str, Any]:
        """Make one request and return its JSON, or fail with the daemon's field and reason."""
        try:
            return self.request(method, path, body, **params)
        except DaemonError as exc:
            fail(exc.field, exc.reason)
