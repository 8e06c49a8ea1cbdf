"""The API's two doors, and what `status` says about them (`security`).

The Unix socket (root-only) gets the security headers and the strict input
rules; the TCP listener gets, in addition, TLS (unless `insecure = true` or a
loopback address), the tokens with their roles, and the count of failed
authentications per source. Failures, blocks and refusals are counted in the
daemon's metrics registry; a block is a `security` event.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter
from starlette.types import ASGIApp

from ipkeeper.api.auth import BearerAuth, Credentials, TokenFileError
from ipkeeper.api.headers import SecurityHeaders
from ipkeeper.api.strict import StrictInput
from ipkeeper.api.throttle import FailureGuard, Limits
from ipkeeper.cluster.keys import KeyRing
from ipkeeper.config.daemon import ApiSection
from ipkeeper.config.tls import CertificateError, CertificateInfo, read_certificate, server_context
from ipkeeper.engine.core import Engine


class SurfaceError(Exception):
    """The API cannot be served as configured (a token file, the certificate)."""


@dataclass
class Surface:
    """How this daemon's API is reached and secured."""

    api: ApiSection
    credentials: Credentials | None = None
    context: ssl.SSLContext | None = None
    certificate: CertificateInfo | None = None
    keys: KeyRing | None = None
    guard: FailureGuard = field(default_factory=FailureGuard)

    def local(self, app: ASGIApp) -> ASGIApp:
        """The application as served on the Unix socket."""
        return SecurityHeaders(StrictInput(app))

    def remote(self, app: ASGIApp) -> ASGIApp:
        """The application as served on TCP: behind the tokens and the failure count."""
        assert self.credentials is not None
        return SecurityHeaders(BearerAuth(StrictInput(app), self.credentials, self.guard))

    def listener(self) -> tuple[object, ...]:
        """What the TCP listener is made of: its address, its token files and the TLS
        certificate's fingerprint. A reload that changes none of them leaves the listener
        (and the connections open on it) as it is; the token files are re-read anyway
        when they change."""
        api = self.api
        tls = self.certificate.sha256 if self.certificate is not None else None
        return (api.tcp_address(), api.token_file, api.viewer_token_file, tls)

    def as_dict(self) -> dict[str, Any]:
        """The `security` object of `status`."""
        api: dict[str, Any] = {
            "socket": str(self.api.socket),
            "listen": self.api.listen,
            "tls": self.context is not None,
            "insecure": bool(self.api.listen and self.context is None and self.api.insecure),
            "roles": self.credentials.roles() if self.credentials else [],
            "certificate": self.certificate.as_dict() if self.certificate else None,
        }
        keys = None
        if self.keys is not None:
            ids = self.keys.ids()
            keys = {
                "primary": ids[0],
                "accepted": sorted(ids),
                "frames_received": {str(k): n for k, n in sorted(self.keys.received.items())},
                "error": self.keys.error,
            }
        return {"api": api, "cluster_keys": keys}


def build(
    api: ApiSection,
    engine: Engine,
    keys: KeyRing | None = None,
    guard: FailureGuard | None = None,
) -> Surface:
    """The surface of `api`: token files read, certificate loaded, counters registered.

    A reload (reload.py) passes the guard in force, so that its counters stay
    registered once and failures counted so far are not forgotten.
    """
    surface = Surface(api, keys=keys, guard=guard or _guard(engine))
    if api.listen is None:
        return surface
    assert api.token_file is not None  # the configuration requires it with listen

    def refused(why: str) -> None:
        engine.events.add("security", f"API token file refused: {why}; it grants nothing now")

    try:
        surface.credentials = Credentials.load(api.token_file, api.viewer_token_file, refused)
    except TokenFileError as exc:
        raise SurfaceError(f"api.token_file: {exc}") from None
    if api.tls_cert is not None and api.tls_key is not None:
        try:
            surface.context = server_context(api.tls_cert, api.tls_key)
            surface.certificate = read_certificate(api.tls_cert)
        except CertificateError as exc:
            raise SurfaceError(f"api.tls_cert: {exc}") from None
    return surface


def _guard(engine: Engine) -> FailureGuard:
    registry = engine.metrics.registry
    failures = Counter(
        "ipkeeper_api_auth_failures",
        "Failed authentications on the TCP API, by reason (missing, wrong)",
        ["reason"],
        registry=registry,
    )
    blocks = Counter(
        "ipkeeper_api_auth_blocks",
        "Sources blocked for failing authentication too often",
        registry=registry,
    )
    refusals = Counter(
        "ipkeeper_api_auth_refused",
        "Requests refused (429) because their source is blocked",
        registry=registry,
    )
    for reason in ("missing", "wrong"):
        failures.labels(reason)

    def limits() -> Limits:
        get = engine.tunables.get
        return Limits(get("API_AUTH_FAILURES"), get("API_AUTH_WINDOW"), get("API_AUTH_BLOCK"))

    def blocked(source: str, used: Limits) -> None:
        blocks.inc()
        engine.events.add(
            "security",
            f"API: {used.failures} failed authentications from {source} within "
            f"{used.window:g} s; refusing it for {used.block:g} s",
            source=source,
        )

    return FailureGuard(
        limits,
        on_block=blocked,
        on_failure=lambda reason: failures.labels(reason).inc(),
        on_refused=refusals.inc,
    )
