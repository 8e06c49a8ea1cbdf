"""SIGHUP: read the configuration file again and apply what can change at run time.

Applied at once: `server.log_level`, `server.log_format`, `server.tunables`
(the tunables file's path), `api.listen` (the TCP listener moves; the Unix
socket stays) and `api.token_file` (the token is read again, so SIGHUP also
rotates it). Anything else that changed (the server's name, state
directory, witness role, socket path, cluster key, port, peers and comm
paths) is reported as needing a restart and keeps its old value. A file
that does not load, a token that cannot be read or an address that cannot
be bound refuses the whole reload with one line and changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ipkeeper.api.auth import TokenFileError, load_token
from ipkeeper.config import daemon as daemon_config
from ipkeeper.config.daemon import DaemonConfig
from ipkeeper.engine.core import Engine
from ipkeeper.logging import LogSetup
from ipkeeper.serve import TcpApi

log = logging.getLogger("ipkeeper.reload")

LIVE_SERVER = ("log_level", "log_format", "tunables")
LIVE_API = ("listen", "token_file")


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
    if old.peer != new.peer:
        result.restart.append("peer (peers and comm paths)")
    server = old.server.model_copy(update={k: getattr(new.server, k) for k in LIVE_SERVER})
    api = old.api.model_copy(update={k: getattr(new.api, k) for k in LIVE_API})
    result.config = old.model_copy(update={"server": server, "api": api})
    return result


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
    ) -> None:
        self.path = path
        self.config = config
        self.engine = engine
        self.logs = logs
        self.tcp = tcp
        self.adjust = adjust  # command-line flags that override the file (--witness)
        self._lock = asyncio.Lock()

    async def reload(self) -> bool:
        """Read the file and apply it; False (and one event saying why) when refused."""
        async with self._lock:
            try:
                new = self.adjust(daemon_config.load(self.path))
                change = plan(self.config, new)
                token = self._token(change.config)
            except (daemon_config.ConfigError, TokenFileError) as exc:
                return self._refuse(str(exc))
            try:
                self.tcp.rebind(change.config.api.tcp_address(), token)
            except OSError as exc:
                return self._refuse(
                    f"api.listen: cannot listen on {new.api.listen}: {exc.strerror}"
                )
            self._apply(change.config)
            self.config = change.config
            what = "; ".join(change.live) or "nothing to change at run time"
            self.engine.events.add("config", f"reloaded {self.path}: {what}")
            if change.restart:
                self.engine.events.add(
                    "config",
                    f"{', '.join(change.restart)} changed in {self.path}: kept as they are "
                    "until the next restart",
                )
            return True

    def _token(self, config: DaemonConfig) -> str | None:
        if config.api.listen is None:
            return None
        assert config.api.token_file is not None
        try:
            return load_token(config.api.token_file)
        except TokenFileError as exc:
            raise TokenFileError(f"api.token_file: {exc}") from None

    def _apply(self, config: DaemonConfig) -> None:
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
