"""`ipkeeper cert`: a self-signed certificate for the TCP API, and what to pin of it."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ipkeeper.cli.output import console, emit_json, fail, json_option

if TYPE_CHECKING:
    from ipkeeper.config.tls import CertificateInfo


@click.group("cert")
def cert() -> None:
    """TLS certificates for the HTTPS API and GUI."""


@cert.command("create")
@click.option("--cert", "cert_path", type=click.Path(path_type=Path), required=True)
@click.option("--key", "key_path", type=click.Path(path_type=Path), required=True)
@click.option(
    "--address",
    "addresses",
    multiple=True,
    help="An address clients dial (repeatable): the API's listen address.",
)
@click.option("--name", "names", multiple=True, help="A DNS name clients dial (repeatable).")
@click.option("--days", type=click.IntRange(1, 3650), default=825, show_default=True)
@json_option
def cert_create(
    cert_path: Path,
    key_path: Path,
    addresses: tuple[str, ...],
    names: tuple[str, ...],
    days: int,
    as_json: bool,
) -> None:
    """Create a self-signed certificate and its key (0600) for `tls_cert` and `tls_key`.

    Clients then pin it: `ipkeeper --cacert CERT`, `curl --cacert CERT`, or a
    browser that imports it (or is given its SPKI pin).
    """
    from ipkeeper.config import tls

    parsed = []
    for text in addresses:
        try:
            parsed.append(ipaddress.ip_address(text))
        except ValueError:
            fail("address", f"{text!r} is not an IPv4 or IPv6 address")
    try:
        info = tls.create_self_signed(
            cert_path, key_path, socket.gethostname(), list(names), parsed, days
        )
    except (tls.CertificateError, OSError) as exc:
        fail("cert", str(exc))
    if as_json:
        emit_json({"cert": str(cert_path), "key": str(key_path), **info.as_dict()})
        return
    console().print(f"wrote {cert_path} and {key_path} (0600)", markup=False)
    _describe(info)


@cert.command("show")
@click.argument("path", type=click.Path(path_type=Path))
@json_option
def cert_show(path: Path, as_json: bool) -> None:
    """The names, expiry and fingerprints of a certificate, to compare or to pin."""
    from ipkeeper.config import tls

    try:
        info = tls.read_certificate(path)
    except tls.CertificateError as exc:
        fail("cert", str(exc))
    if as_json:
        emit_json(info.as_dict())
        return
    _describe(info)


def _describe(info: CertificateInfo) -> None:
    for label, value in (
        ("subject", info.subject),
        ("names", ", ".join(info.names)),
        ("valid until", info.not_after.isoformat()),
        ("SHA-256", info.sha256),
        ("SPKI pin", f"sha256/{info.spki_sha256}"),
    ):
        console().print(f"{label + ':':13} {value}", markup=False)
