"""`ipkeeperd --check-config`: is this server ready to run ipkeeperd? Touches nothing.

Checks the configuration file (every problem pydantic finds, not only the
first, including plain HTTP on a non-loopback address without `insecure`),
the cluster key file (present, private, valid `ID KEY` lines), the API's
files when it listens on TCP (each token file present, private, one token
of 16 characters or more a line, no viewer token that is also an admin
token; the TLS certificate present, a PEM certificate not writable by
others and not expired; its key present, private and matching it), the
tunables file (known names, valid values), who may change what the daemon
trusts (config/permissions.py: the configuration and tunables files, the
state directory, the database) and that every comm path's local address is
configured on this server. Prints one line per problem and
exits 1, or one line saying all is well and exits 0. It creates no file,
directory, socket or database.
"""

from __future__ import annotations

import datetime
import ipaddress
import stat
import sys
import tomllib
from pathlib import Path

from pydantic import ValidationError

from ipkeeper.api.auth import TokenFileError, read_tokens
from ipkeeper.cluster.keys import KeyFileError, read_key_file
from ipkeeper.config import permissions
from ipkeeper.config.daemon import ApiSection, DaemonConfig
from ipkeeper.config.secrets import SecretFileError, check_private
from ipkeeper.config.tls import CertificateError, read_certificate, server_context
from ipkeeper.config.tunables import TUNABLES, parse_lines
from ipkeeper.kits.ip import netlink


def load(path: Path, witness: bool = False) -> tuple[DaemonConfig | None, list[str]]:
    """The configuration at `path`, or None and every reason it is not valid."""
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        return None, [f"{path}: {exc.strerror or exc}"]
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        return None, [f"{path}: not valid TOML: {exc}"]
    if witness:
        data.setdefault("server", {})
        if isinstance(data["server"], dict):
            data["server"]["witness"] = True
    try:
        return DaemonConfig.model_validate(data), []
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"]) or "file"
            lines.append(f"{path}: {where}: {error['msg']}")
        return None, lines


def secrets(config: DaemonConfig) -> list[str]:
    """Problems with the cluster key (when there are peers) and the API's token files,
    TLS certificate and key (when it listens on TCP): what the daemon refuses to start
    with, checked before it creates anything."""
    found = []
    if config.peer:
        try:
            read_key_file(config.cluster.key_file)
        except KeyFileError as exc:
            found.append(f"cluster.key_file: {exc}")
    return found + api_files(config.api)


def _token_files(api: ApiSection) -> list[tuple[str, Path]]:
    files = [("api.token_file", api.token_file), ("api.viewer_token_file", api.viewer_token_file)]
    return [(name, path) for name, path in files if path is not None]


def api_files(api: ApiSection) -> list[str]:
    """Problems with the files the TCP API reads (none when it does not listen): a reload
    (reload.py) refuses a configuration with any of them, naming the field."""
    if api.listen is None:
        return []
    found = []
    for name, path in _token_files(api):
        try:
            read_tokens(path)
        except TokenFileError as exc:
            found.append(f"{name}: {exc}")
    if api.tls_cert is not None and api.tls_key is not None:
        found += _tls_files(api.tls_cert, api.tls_key)
    return found


def _tls_files(cert: Path, key: Path) -> list[str]:
    found = []
    try:
        read_certificate(cert)
        mode = stat.S_IMODE(cert.stat().st_mode)
    except (CertificateError, OSError) as exc:
        found.append(f"api.tls_cert: {exc}")
    else:
        if mode & (stat.S_IWGRP | stat.S_IWOTH):
            found.append(f"api.tls_cert: {cert}: mode {mode:04o} lets others change it")
    try:
        check_private(key)
    except SecretFileError as exc:
        found.append(f"api.tls_key: {exc}")
    if not found:
        try:
            server_context(cert, key)
        except CertificateError as exc:
            found.append(f"api.tls_key: {exc}")
    return found


def api_roles_and_expiry(api: ApiSection) -> list[str]:
    """What the daemon would run with but should not: a viewer token that is also an admin
    token (it would grant admin), and a certificate past its end (clients refuse it)."""
    if api.listen is None:
        return []
    found = []
    tokens: dict[str, frozenset[bytes]] = {}
    for name, path in _token_files(api):
        try:
            tokens[name] = read_tokens(path)
        except TokenFileError:
            continue  # reported by api_files
    shared = tokens.get("api.token_file", frozenset()) & tokens.get(
        "api.viewer_token_file", frozenset()
    )
    if shared:
        found.append(
            f"api.viewer_token_file: {api.viewer_token_file}: holds {len(shared)} token(s) of "
            "api.token_file; those grant admin, not viewer"
        )
    if api.tls_cert is not None:
        try:
            info = read_certificate(api.tls_cert)
        except CertificateError:
            return found  # reported by api_files
        if info.not_after < datetime.datetime.now(datetime.UTC):
            found.append(
                f"api.tls_cert: {api.tls_cert}: expired on {info.not_after:%Y-%m-%d %H:%M} UTC"
            )
    return found


def tunables(path: Path) -> list[str]:
    """Problems with the tunables file; a missing file is none (every default applies)."""
    where = f"server.tunables: {path}"
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        return [f"{where}: {getattr(exc, 'strerror', None) or exc}"]
    found = []  # its owner and mode: trust()
    for name, raw in parse_lines(text).items():
        tunable = TUNABLES.get(name)
        if tunable is None:
            found.append(f"{where}: {name} is not a tunable (see `ipkeeper tunables`)")
            continue
        try:
            tunable.parse(raw)
        except ValueError as exc:
            found.append(f"{where}: {name}={raw!r} {exc}")
    return found


def trust(config: DaemonConfig, path: Path) -> list[str]:
    """Problems with who may change what the daemon trusts (config/permissions.py): the
    configuration file at `path`, the tunables file, the state directory and the
    database; the daemon refuses to start on any of them, before it does anything."""
    return [
        *permissions.trusted_file("config", path),
        *permissions.trusted_file("server.tunables", config.server.tunables, required=False),
        *permissions.state_dir(config.server.state_dir),
        *permissions.database(config.database),
    ]


def local_addresses(config: DaemonConfig) -> list[str]:
    """Every comm path's local address must be configured on this server."""
    try:
        mine = netlink.own_addresses()
    except (OSError, netlink.NetlinkFailure) as exc:
        return [f"peer: cannot read this server's addresses: {exc}"]
    found = []
    for i, peer in enumerate(config.peer):
        for j, path in enumerate(peer.paths):
            if ipaddress.ip_address(path.local) not in mine:
                found.append(
                    f"peer.{i}.paths.{j}.local: {path.local} (a path to {peer.name}) "
                    "is not an address of this server"
                )
    return found


def problems(path: Path, witness: bool = False) -> tuple[DaemonConfig | None, list[str]]:
    """The configuration and everything that would keep it from working here."""
    config, found = load(path, witness)
    if config is None:
        return None, found
    found += trust(config, path)
    found += secrets(config)
    found += api_roles_and_expiry(config.api)
    found += tunables(config.server.tunables)
    found += local_addresses(config)
    return config, found


def main(path: Path, witness: bool = False) -> int:
    """Print one line per problem (exit 1), or that the configuration is fine (exit 0)."""
    config, found = problems(path, witness)
    for line in found:
        print(f"ipkeeperd: {line}", file=sys.stderr)
    if found or config is None:
        return 1
    paths = sum(len(p.paths) for p in config.peer)
    print(
        f"ipkeeperd: {path}: configuration OK (server {config.name}, "
        f"{len(config.peer)} peer(s), {paths} comm path(s)){_tcp_api(config.api)}"
    )
    return 0


def _tcp_api(api: ApiSection) -> str:
    if api.listen is None:
        return ""
    if api.tls:
        scheme = "HTTPS"
    else:
        scheme = "plain HTTP (insecure = true)" if api.insecure else "plain HTTP (loopback)"
    roles = "admin and viewer tokens" if api.viewer_token_file else "admin tokens"
    return f"; TCP API on {api.listen}: {scheme}, {roles}"
