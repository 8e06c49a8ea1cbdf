"""SIGHUP: read the configuration file again and apply what can change at run time.

Applied at once: `server.log_level`, `server.log_format`, `server.tunables`
(the tunables file's path) and the TCP API: `api.listen` (the listener
moves; the Unix socket stays), the token files, `api.tls_cert`, `api.tls_key`
and `api.insecure`. The token files and the certificate are read again at
each reload, so SIGHUP also installs a renewed certificate (token files are
re-read when they change anyway, api/auth.py); the listener is restarted only
when its address, its token files or its certificate changed, and it speaks
TLS exactly as the new configuration says (which refuses plain HTTP on a
non-loopback address, config/daemon.py). Comm paths added to or removed from a peer
start or stop at once (cluster/node.py `change_paths`), the other paths and
every VIP untouched. Anything else that changed (the server's name, state
directory, witness role, socket path, cluster key file, port, a peer added,
removed or made a witness) is reported as needing a restart and keeps its
old value; the cluster key file's contents are re-read when they change
(cluster/keys.py). A file that does not load, a configuration or tunables
file that others may change (config/permissions.py), a token file,
certificate or key that cannot be used, or an address that cannot be bound
refuses the whole reload with one line and changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ipkeeper import checkconfig
from ipkeeper.api import surface as api_surface
from ipkeeper.cluster.node import ClusterNode
from ipkeeper.config import daemon as daemon_config
from ipkeeper.config.daemon import DaemonConfig, Peer
from ipkeeper.engine.core import Engine
from ipkeeper.logging import LogSetup
from ipkeeper.serve import TcpApi

log = logging.getLogger("ipkeeper.reload")

LIVE_SERVER = ("log_level", "log_format", "tunables")
LIVE_API = ("listen", "token_file", "viewer_token_file", "tls_cert", "tls_key", "insecure")


@dataclass
class ReloadPlan:
    """What a new configuration changes: applied now, or only at the next restart."""

    config: DaemonConfig  # the configuration in force once the live changes are applied
    live: list[str] = field(default_factory=list)  # "server.log_level: info -> debug"
    restart: list[str] = field(default_factory=list)  # "peer", "cluster.port", ...


def _show(value: object) -> str:
    return "none" if value is None else str(value)


def plan(old: DaemonConfig, new: DaemonConfig) -> ReloadPlan:
    """Compare the configuration in force with the new one; pure, for tests."""
    result = ReloadPlan(old)
    for section, live in (("server", LIVE_SERVER), ("api", LIVE_API), ("cluster", ())):
        before, after = getattr(old, section), getattr(new, section)
        for name in type(before).model_fields:
            was, now = getattr(before, name), getattr(after, name)
            if was == now:
                continue
            if name in live:
                result.live.append(f"{section}.{name}: {_show(was)} -> {_show(now)}")
            else:
                result.restart.append(f"{section}.{name}")
    peers = old.peer
    if old.peer != new.peer:
        if _same_peers(old, new):
            peers = new.peer
            result.live += [
                f"peer.{after.name}.path: {_paths(before)} -> {_paths(after)}"
                for before, after in zip(old.peer, _in_order(old, new), strict=True)
                if before.paths != after.paths
            ]
        else:
            result.restart.append("peer (peers added, removed or made witnesses)")
    server = old.server.model_copy(update={k: getattr(new.server, k) for k in LIVE_SERVER})
    api = old.api.model_copy(update={k: getattr(new.api, k) for k in LIVE_API})
    result.config = old.model_copy(update={"server": server, "api": api, "peer": peers})
    return result


def _same_peers(old: DaemonConfig, new: DaemonConfig) -> bool:
    """The same peers with the same roles (only their comm paths may differ)."""
    return {(p.name, p.witness) for p in old.peer} == {(p.name, p.witness) for p in new.peer}


def _in_order(old: DaemonConfig, new: DaemonConfig) -> list[Peer]:
    by_name = {p.name: p for p in new.peer}
    return [by_name[p.name] for p in old.peer]


def _paths(peer: Peer) -> str:
    return ", ".join(f"{p.local}->{p.remote}" for p in peer.paths) or "none"


class Reloader:
    """Applies a new configuration file to the running daemon, or refuses it."""

    def __init__(
        self,
        path: Path,
        config: DaemonConfig,
        engine: Engine,
        logs: LogSetup | None,
        tcp: TcpApi,
        adjust: Callable[[DaemonConfig], DaemonConfig] = lambda c: c,
        cluster: ClusterNode | None = None,
    ) -> None:
        self.path = path
        self.config = config
        self.engine = engine
        self.logs = logs
        self.tcp = tcp
        self.adjust = adjust  # command-line flags that override the file (--witness)
        self.cluster = cluster
        self._lock = asyncio.Lock()

    async def reload(self) -> bool:
        """Read the file and apply it; False (and one event saying why) when refused."""
        async with self._lock:
            try:
                new = self.adjust(daemon_config.load(self.path))
                change = plan(self.config, new)
                refused = checkconfig.trust(change.config, self.path)
                refused += checkconfig.api_files(change.config.api)
                if refused:
                    return self._refuse("; ".join(refused))
                surface = self._surface(change.config)
            except (daemon_config.ConfigError, api_surface.SurfaceError) as exc:
                return self._refuse(str(exc))
            before = self.tcp.surface.certificate
            try:
                self.tcp.rebind(surface)
            except OSError as exc:
                return self._refuse(
                    f"api.listen: cannot listen on {new.api.listen}: {exc.strerror}"
                )
            self._apply(change.config)
            self.config = change.config
            live = list(change.live)
            after = surface.certificate
            if after is not None and (before is None or before.sha256 != after.sha256):
                live.append(f"api: TLS certificate SHA-256 {after.sha256}")
            what = "; ".join(live) or "nothing to change at run time"
            self.engine.events.add("config", f"reloaded {self.path}: {what}")
            if change.restart:
                self.engine.events.add(
                    "config",
                    f"{', '.join(change.restart)} changed in {self.path}: kept as they are "
                    "until the next restart",
                )
            return True

    def _surface(self, config: DaemonConfig) -> api_surface.Surface:
        """The TCP API as `config` says, its files read now (SurfaceError if one cannot
        be used); the failure count and the cluster keys carry over."""
        current = self.tcp.surface
        return api_surface.build(config.api, self.engine, current.keys, current.guard)

    def _apply(self, config: DaemonConfig) -> None:
        if self.cluster is not None and config.peer != self.config.peer:
            self.cluster.change_paths(*self.cluster.path_changes(config))
        if self.logs is not None:
            self.logs.set_level(config.server.log_level)
            self.logs.set_format(config.server.log_format)
        if config.server.tunables != self.engine.tunables.path:
            self.engine.tunables.use(config.server.tunables)

    def _refuse(self, reason: str) -> bool:
        self.engine.events.add(
            "config", f"reload refused, the configuration in force is kept: {reason}"
        )
        return False
