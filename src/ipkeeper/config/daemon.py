"""The daemon's configuration file (TOML; SPEC.md section 5), validated by pydantic.

[server]
name = "s1"
state_dir = "/var/lib/ipkeeper"
tunables = "/etc/default/ipkeeper"
log_level = "info"                      # debug, info, warning, error
log_format = "text"                     # or "json": one JSON object per line
damaged_database = "refuse"             # or "resync": set a damaged database aside and
                                        # learn the definitions from the peers

[api]
socket = "/run/ipkeeper/api.sock"       # root-only, used by the CLI
listen = "198.18.0.11:7480"             # optional: HTTPS API + GUI over TCP
token_file = "/etc/ipkeeper/api.token"  # the admin bearer token for TCP clients (0600)
viewer_token_file = "/etc/ipkeeper/api.viewer.token"  # optional: a read-only token (0600)
tls_cert = "/etc/ipkeeper/api.crt"      # required unless listen is a loopback address
tls_key = "/etc/ipkeeper/api.key"       # (0600); `ipkeeper cert create` makes both
insecure = false                        # true: plain HTTP on a non-loopback address

[cluster]
key_file = "/etc/ipkeeper/cluster.key"  # shared HMAC keys, "ID KEY" lines (0600)
port = 7470                             # QUORUM and the timings are tunables


[[peer]]
name = "s2"
paths = [{ local = "198.18.0.11", remote = "198.18.0.12" },
         { local = "198.18.1.11", remote = "198.18.1.12" }]
witness = false                         # true for a witness (ipkeeperd --witness)
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DEFAULT_CONFIG = Path("/etc/ipkeeper/ipkeeper.toml")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSection(_Strict):
    """This server."""

    name: str
    state_dir: Path = Path("/var/lib/ipkeeper")
    tunables: Path = Path("/etc/default/ipkeeper")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = "text"
    witness: bool = False
    # A damaged database at start-up (engine/soundness.py): refuse to start, or set it
    # aside and learn the definitions from the peers.
    damaged_database: Literal["refuse", "resync"] = "refuse"

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_RE.match(value):
            raise ValueError("must be 1-63 letters, digits, '.', '_' or '-'")
        return value


class ApiSection(_Strict):
    """Where the HTTP API listens, its credentials and its TLS certificate."""

    socket: Path = Path("/run/ipkeeper/api.sock")
    listen: str | None = None
    token_file: Path | None = Field(default=None, description="the admin token")
    viewer_token_file: Path | None = Field(default=None, description="a read-only token")
    tls_cert: Path | None = None
    tls_key: Path | None = None
    insecure: bool = Field(
        default=False, description="true: serve plain HTTP on a non-loopback address"
    )

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str | None) -> str | None:
        if value is not None:
            host, _, port = value.rpartition(":")
            ipaddress.ip_address(host.strip("[]"))
            if not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError("must be ADDRESS:PORT")
        return value

    @model_validator(mode="after")
    def _credentials_with_tcp(self) -> ApiSection:
        if self.listen is not None and self.token_file is None:
            raise ValueError(
                "token_file is required when listen is set (the TCP API needs a credential)"
            )
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together: set both or neither")
        if self.tls_cert is not None and self.insecure:
            raise ValueError("insecure = true with tls_cert: choose TLS or plain HTTP, not both")
        where = self.tcp_address()
        plain = where is not None and self.tls_cert is None and not self.insecure
        if plain and where is not None and not ipaddress.ip_address(where[0]).is_loopback:
            raise ValueError(
                f"listen {self.listen} is not a loopback address: set tls_cert and tls_key "
                "(ipkeeper cert create), or insecure = true to serve plain HTTP"
            )
        return self

    def tcp_address(self) -> tuple[str, int] | None:
        """(host, port) of the TCP listener, or None."""
        if self.listen is None:
            return None
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)

    @property
    def tls(self) -> bool:
        """True when the TCP API speaks TLS."""
        return self.tls_cert is not None


class CommPath(_Strict):
    """One communication path to a peer: a local and a remote address (R25)."""

    local: ipaddress.IPv4Address | ipaddress.IPv6Address
    remote: ipaddress.IPv4Address | ipaddress.IPv6Address

    @model_validator(mode="after")
    def _same_family(self) -> CommPath:
        if self.local.version != self.remote.version:
            raise ValueError("local and remote must be the same IP version")
        return self


class Peer(_Strict):
    """Another server of the cluster and the paths that reach it."""

    name: str
    paths: list[CommPath] = Field(min_length=1)
    witness: bool = Field(
        default=False, description="a vote with no resources (ipkeeperd --witness)"
    )


class ClusterSection(_Strict):
    """Comm paths, the cluster key and quorum (R25, R30, R32)."""

    key_file: Path = Path("/etc/ipkeeper/cluster.key")
    port: int = Field(default=7470, gt=0, lt=65536)


class DaemonConfig(_Strict):
    """The whole configuration file."""

    server: ServerSection
    api: ApiSection = ApiSection()
    cluster: ClusterSection = ClusterSection()
    peer: list[Peer] = []

    @model_validator(mode="after")
    def _peers(self) -> DaemonConfig:
        names = [p.name for p in self.peer]
        if self.server.name in names:
            raise ValueError(f"peer: {self.server.name} is this server's own name")
        if len(set(names)) != len(names):
            raise ValueError("peer: names must be unique")
        return self

    @property
    def name(self) -> str:
        """This server's name."""
        return self.server.name

    @property
    def cluster_witness(self) -> bool:
        """True when this daemon runs as a witness (a vote, no resources)."""
        return bool(self.server.witness)

    @property
    def database(self) -> Path:
        """The SQLite database file."""
        return self.server.state_dir / "ipkeeper.db"


class ConfigError(Exception):
    """A configuration file that cannot be used, with a one-line reason."""


def load(path: Path) -> DaemonConfig:
    """Read and validate the configuration at `path`."""
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        return DaemonConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{path}: {where}: {first['msg']}") from None
