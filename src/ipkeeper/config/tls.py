"""TLS for the TCP API and GUI: self-signed certificates, their fingerprints, SSL contexts.

A first install or a lab has no certificate authority, so `ipkeeper cert create`
makes a self-signed certificate (ECDSA P-256) naming the server's addresses;
clients then trust exactly that certificate (the CLI's `--cacert`, a browser's
imported certificate or its SPKI pin). The private key is written 0600 and
refused later if anyone else may read it.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ipkeeper.config.secrets import SecretFileError, check_private

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class CertificateError(Exception):
    """A certificate or key that cannot be used, with the reason."""


@dataclass(frozen=True)
class CertificateInfo:
    """What an administrator compares when pinning a certificate."""

    subject: str
    names: tuple[str, ...]
    not_after: datetime.datetime
    sha256: str  # fingerprint of the whole certificate, AA:BB:...
    spki_sha256: str  # base64 SHA-256 of the public key (Chromium's SPKI pin, HPKP style)

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form (for `status` and `cert show --json`)."""
        return {
            "subject": self.subject,
            "names": list(self.names),
            "not_after": self.not_after.isoformat(),
            "sha256": self.sha256,
            "spki_sha256": self.spki_sha256,
        }


def create_self_signed(
    cert_path: Path,
    key_path: Path,
    common_name: str,
    dns_names: list[str],
    addresses: list[IPAddress],
    days: int = 825,
) -> CertificateInfo:
    """Write a new self-signed server certificate and its key (0600); refuses to overwrite.

    Every name and address becomes a subjectAltName, since clients check the
    host they dialled against those alone.
    """
    if not dns_names and not addresses:
        raise CertificateError("name the server by at least one --name or --address")
    if not 1 <= days <= 3650:
        raise CertificateError(f"days: {days} is out of range 1..3650")
    for path in (cert_path, key_path):
        if path.exists():
            raise CertificateError(f"{path} exists; remove it first or choose another path")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    alt: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    alt += [x509.IPAddress(a) for a in addresses]
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.OID_SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem_key = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem_key)
    fd = os.open(cert_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(cert.public_bytes(serialization.Encoding.PEM))
    return describe(cert)


def describe(cert: x509.Certificate) -> CertificateInfo:
    """Subject, names, expiry and the two fingerprints of `cert`."""
    try:
        alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = tuple(
            [str(n) for n in alt.get_values_for_type(x509.DNSName)]
            + [str(a) for a in alt.get_values_for_type(x509.IPAddress)]
        )
    except x509.ExtensionNotFound:
        names = ()
    digest = cert.fingerprint(hashes.SHA256()).hex().upper()
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return CertificateInfo(
        subject=cert.subject.rfc4514_string(),
        names=names,
        not_after=cert.not_valid_after_utc,
        sha256=":".join(digest[i : i + 2] for i in range(0, len(digest), 2)),
        spki_sha256=base64.b64encode(hashlib.sha256(spki).digest()).decode(),
    )


def read_certificate(path: Path) -> CertificateInfo:
    """The description of the first certificate in the PEM file at `path`."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CertificateError(f"{path}: {exc.strerror or exc}") from None
    try:
        return describe(x509.load_pem_x509_certificate(data))
    except ValueError as exc:
        raise CertificateError(f"{path}: not a PEM certificate ({exc})") from None


def server_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    """The API's TLS context: TLS 1.2 at least, the certificate and a private key file.

    The key file must be readable by its owner only (as the cluster key and the
    tokens); a key that does not match the certificate is refused here, before
    the daemon listens.
    """
    try:
        check_private(key_path)
    except SecretFileError as exc:
        raise CertificateError(str(exc)) from None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(cert_path), str(key_path))
    except (OSError, ssl.SSLError) as exc:
        raise CertificateError(f"{cert_path} with {key_path}: {exc}") from None
    return context
