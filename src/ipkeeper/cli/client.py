"""The CLI's only way to a daemon: its HTTP API, over the local Unix socket or, with
`--url`, over HTTPS with a token and a pinned certificate."""

from __future__ import annotations

import json
import os
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from ipkeeper.cli.output import fail
from ipkeeper.config.secrets import SecretFileError, read_secret

DEFAULT_SOCKET = "/run/ipkeeper/api.sock"


def segment(text: str) -> str:
    """`text` made safe as one segment of a URL path (a tag may hold '?', '#', ':' ...)."""
    return quote(text, safe="")


def socket_path(option: str | None) -> str:
    """--socket, else IPKEEPER_SOCKET, else the default path."""
    return option or os.environ.get("IPKEEPER_SOCKET") or DEFAULT_SOCKET


@dataclass(frozen=True)
class Remote:
    """A daemon's TCP API: its URL, the token to show and the certificate to trust."""

    url: str
    token_file: Path | None
    cacert: Path | None

    def token(self) -> str:
        """The first token of the token file (a file only its owner may read)."""
        if self.token_file is None:
            fail("token-file", "needed with --url (or IPKEEPER_TOKEN_FILE)")
        try:
            text = read_secret(self.token_file, 16)
        except SecretFileError as exc:
            fail("token-file", str(exc))
        return next(line.split("#")[0].strip() for line in text.splitlines() if line.strip())

    def tls(self) -> ssl.SSLContext:
        """Trust the pinned certificate only (--cacert), or the system's authorities."""
        try:
            if self.cacert is not None:
                return ssl.create_default_context(cafile=str(self.cacert))
            return ssl.create_default_context()
        except (OSError, ssl.SSLError) as exc:
            fail("cacert", f"{self.cacert}: {exc}")


class Client:
    """Typed calls to one daemon; errors become one-line CLI errors (exit 1)."""

    def __init__(self, socket: str, timeout: float = 600.0, remote: Remote | None = None) -> None:
        self.where = remote.url if remote else socket
        limits = httpx.Timeout(timeout, connect=5.0)
        if remote is None:
            self.http = httpx.Client(
                transport=httpx.HTTPTransport(uds=socket),
                base_url="http://ipkeeperd",
                timeout=limits,
            )
        else:
            self.http = httpx.Client(
                base_url=remote.url.rstrip("/"),
                verify=remote.tls() if remote.url.startswith("https:") else True,
                headers={"Authorization": f"Bearer {remote.token()}"},
                timeout=limits,
                trust_env=False,
            )

    def _unreachable(self, exc: Exception) -> None:
        text = str(exc)
        if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
            fail("cacert", f"{self.where} is not the certificate trusted (--cacert): {text}")
        fail(
            "daemon",
            f"no ipkeeperd answers on {self.where} ({exc}); is it running? "
            "(--socket, IPKEEPER_SOCKET, --url)",
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
