"""The CLI's way to a daemon's TCP API (`--url`): HTTPS with a bearer token and a pinned
certificate. Loaded only when a URL is given, with ssl and httpx: the local socket's
path (cli/client.py) stays free of both, for a fast `ipkeeper status`."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import httpx

from ipkeeper.cli.client import DaemonError
from ipkeeper.config.secrets import SecretFileError, read_secret


@dataclass(frozen=True)
class Remote:
    """A daemon's TCP API: its URL, the token to show and the certificate to trust."""

    url: str
    token_file: Path | None
    cacert: Path | None

    def token(self) -> str:
        """The first token of the token file (a file only its owner may read)."""
        if self.token_file is None:
            raise DaemonError("token-file", "needed with --url (or IPKEEPER_TOKEN_FILE)", 0)
        try:
            text = read_secret(self.token_file, 16)
        except SecretFileError as exc:
            raise DaemonError("token-file", str(exc), 0) from None
        return next(line.split("#")[0].strip() for line in text.splitlines() if line.strip())

    def tls(self) -> ssl.SSLContext:
        """Trust the pinned certificate only (--cacert), or the system's authorities."""
        try:
            if self.cacert is not None:
                return ssl.create_default_context(cafile=str(self.cacert))
            return ssl.create_default_context()
        except (OSError, ssl.SSLError) as exc:
            raise DaemonError("cacert", f"{self.cacert}: {exc}", 0) from None

    def exchange(
        self, method: str, target: str, payload: bytes, timeout: float | None
    ) -> tuple[int, bytes]:
        """Send one request for `target` (path and query); (status, body) of the answer, or
        DaemonError naming the certificate, the token file or the unreachable daemon."""
        base = self.url.rstrip("/")
        headers = {"Authorization": f"Bearer {self.token()}", "Accept": "application/json"}
        if payload:
            headers["Content-Type"] = "application/json"
        verify: ssl.SSLContext | bool = self.tls() if base.startswith("https:") else True
        try:
            with httpx.Client(
                verify=verify, timeout=httpx.Timeout(timeout, connect=5.0), trust_env=False
            ) as http:
                response = http.request(method, base + target, content=payload, headers=headers)
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
            text = " ".join(str(exc).split())
            if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
                raise DaemonError(
                    "cacert", f"{self.url} is not the certificate trusted (--cacert): {text}", 0
                ) from None
            raise DaemonError(
                "daemon", f"no ipkeeperd answers on {self.url} ({text}); is it running? (--url)", 0
            ) from None
        return response.status_code, response.content
