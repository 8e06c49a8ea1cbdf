"""`ipkeeperd --check-config`: is this server ready to run ipkeeperd? Touches nothing.

Checks the configuration file (every problem pydantic finds, not only the
first), the cluster key and API token files (present, private, long
enough), the tunables file (known names, valid values, not writable by
others), the state directory (private to the daemon's user) and that every
comm path's local address is configured on this server. Prints one line per
problem and exits 1, or one line saying all is well and exits 0. It creates
no file, directory, socket or database.
"""

from __future__ import annotations

import ipaddress
import os
import stat
import sys
import tomllib
from pathlib import Path

from pydantic import ValidationError

from ipkeeper.api.auth import TokenFileError, load_token
from ipkeeper.cluster.wire import KeyFileError, load_key
from ipkeeper.config.daemon import DaemonConfig
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
    """Problems with the cluster key (when there are peers) and the API token (with TCP)."""
    found = []
    if config.peer:
        try:
            load_key(config.cluster.key_file)
        except KeyFileError as exc:
            found.append(f"cluster.key_file: {exc}")
    if config.api.token_file is not None and config.api.listen is not None:
        try:
            load_token(config.api.token_file)
        except TokenFileError as exc:
            found.append(f"api.token_file: {exc}")
    return found


def tunables(path: Path) -> list[str]:
    """Problems with the tunables file; a missing file is none (every default applies)."""
    where = f"server.tunables: {path}"
    try:
        st = path.stat()
        text = path.read_text()
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        return [f"{where}: {getattr(exc, 'strerror', None) or exc}"]
    found = []
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        found.append(f"{where}: mode {stat.S_IMODE(st.st_mode):04o} lets others change it")
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


def _private(path: Path, field: str, what: str) -> list[str]:
    st = path.stat()
    if st.st_uid != os.geteuid():
        return [f"{field}: {path}: owned by uid {st.st_uid}, not by the daemon's user"]
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        mode = stat.S_IMODE(st.st_mode)
        return [f"{field}: {path}: mode {mode:04o} lets others in; chmod {what}"]
    return []


def state_dir(config: DaemonConfig) -> list[str]:
    """Problems with the state directory and database, when they exist (else created at start)."""
    where = config.server.state_dir
    field = "server.state_dir"
    try:
        if not where.exists():
            return []
        if not where.is_dir():
            return [f"{field}: {where}: not a directory"]
        found = _private(where, field, "700")
        if config.database.exists():
            found += _private(config.database, field, "600")
    except OSError as exc:
        return [f"{field}: {where}: {exc.strerror or exc}"]
    return found


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
    found += secrets(config)
    found += tunables(config.server.tunables)
    found += state_dir(config)
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
        f"{len(config.peer)} peer(s), {paths} comm path(s))"
    )
    return 0
