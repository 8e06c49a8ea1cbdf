"""`ipkeeperd`: one process per server that keeps its resources alive.

Wiring only: configuration, store, kits, engine, monitor and API are built
here and nowhere else; everything else receives what it needs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import ipaddress
import logging
import os
import signal
import socket
import ssl
import sys
from collections.abc import Iterator
from pathlib import Path

import uvicorn
from starlette.types import ASGIApp

from ipkeeper import __version__
from ipkeeper import logging as ipk_logging
from ipkeeper.api import surface as api_surface
from ipkeeper.api.app import create_app
from ipkeeper.cluster.keys import KeyFileError, KeyRing
from ipkeeper.cluster.node import ClusterNode
from ipkeeper.cluster.service import ClusterService
from ipkeeper.config import daemon as daemon_config
from ipkeeper.config.tunables import Tunables
from ipkeeper.engine.core import Engine
from ipkeeper.engine.failover import Failover
from ipkeeper.engine.monitor import Monitor
from ipkeeper.engine.reconcile import reconcile
from ipkeeper.kits.app.kit import AppKit
from ipkeeper.kits.ip import netlink
from ipkeeper.kits.ip.kit import IPKit
from ipkeeper.kits.ip.params import IPAddress, IPSpec
from ipkeeper.kits.registry import KitRegistry
from ipkeeper.store.db import open_db
from ipkeeper.store.events import EventLog
from ipkeeper.store.repo import Repo

log = logging.getLogger("ipkeeper.daemon")
IP_FREEBIND = 15


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the daemon decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Install nothing."""
        yield


def unix_listener(path: Path) -> socket.socket:
    """A Unix socket at `path` readable by root only (0600); refuses if a daemon answers there."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    if path.exists():
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with probe:
            try:
                probe.connect(str(path))
            except OSError:
                path.unlink()
            else:
                raise SystemExit(f"ipkeeperd: error: api.socket: another daemon answers on {path}")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(str(path))
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(64)
    return sock


def tcp_listener(host: str, port: int) -> socket.socket:
    """A TCP socket for the API; it may bind an address not (yet) configured (IP_FREEBIND)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
    sock.bind((host, port))
    sock.listen(128)
    return sock


def api_servers(
    config: daemon_config.DaemonConfig, engine: Engine, keys: KeyRing | None = None
) -> list[tuple[_Server, socket.socket]]:
    """The API on the Unix socket and, when configured, on TCP (api/surface.py)."""
    app = create_app(engine)
    try:
        app.state.surface = surface = api_surface.build(config.api, engine, keys)
    except api_surface.SurfaceError as exc:
        raise SystemExit(f"ipkeeperd: error: {exc}") from None
    servers = [(_server(surface.local(app)), unix_listener(config.api.socket))]
    where = config.api.tcp_address()
    if where is not None:
        servers.append((_server(surface.remote(app), surface.context), tcp_listener(*where)))
    return servers


def _server(app: ASGIApp, tls: ssl.SSLContext | None = None) -> _Server:
    factory = (lambda _config, _default: tls) if tls is not None else None
    return _Server(
        uvicorn.Config(
            app,
            log_level="warning",
            lifespan="off",
            access_log=False,
            ssl_context_factory=factory,
        )
    )


def lock_state_dir(state_dir: Path) -> int:
    """Hold an exclusive lock on the state directory for the daemon's lifetime."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(state_dir / "ipkeeperd.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise SystemExit(
            f"ipkeeperd: error: server.state_dir: {state_dir} is in use by another ipkeeperd"
        ) from None
    return fd


def build_engine(config: daemon_config.DaemonConfig) -> Engine:
    """Store, tunables, kits and engine for this server."""
    db = open_db(config.database)
    repo = Repo(db)
    tunables = Tunables(config.server.tunables)

    def ping_list(spec: IPSpec) -> list[IPAddress]:
        return [ipaddress.ip_address(a) for a in repo.ping_list(str(spec.network))]

    kits = KitRegistry(IPKit(tunables, ping_list), AppKit(config.name))
    return Engine(config.name, repo, EventLog(db, config.name), kits, tunables)


def join_cluster(
    config: daemon_config.DaemonConfig, engine: Engine, stop: asyncio.Event
) -> tuple[ClusterService, Failover, asyncio.Task[None]]:
    """Comm paths, the cluster service and the failover logic, the paths running."""

    def key_refused(why: str) -> None:
        engine.events.add("security", f"cluster.key_file: {why}; the keys in use are kept")

    try:
        key = KeyRing.load(config.cluster.key_file, on_error=key_refused)
    except KeyFileError as exc:
        raise SystemExit(f"ipkeeperd: error: cluster.key_file: {exc}") from None
    node = ClusterNode(config, key, engine.tunables, engine.events)
    service = ClusterService(node, engine)
    engine.peers = service
    failover = Failover(engine)
    service.on_peer.append(failover.peer_changed)
    service.on_states.append(failover.states_received)
    return service, failover, asyncio.create_task(node.run(stop), name="cluster")


async def wait_for_peers(service: ClusterService, config: daemon_config.DaemonConfig) -> None:
    """Before deciding anything at start-up, hear from the peers.

    Peers that cannot be reached within a few heartbeat timeouts are given up
    on (they may be down); a peer that is connected is always waited for, up
    to a few seconds, because deciding without its states could mean adopting
    what it holds now.
    """
    loop = asyncio.get_running_loop()
    interval, misses = service.node.timing()
    start = loop.time()
    reach = max(1.0, 2 * interval * misses + 0.5)
    expected = {p.name for p in config.peer}

    def waiting() -> set[str]:
        connected = service.node.alive() if loop.time() - start >= reach else expected
        return (expected & connected) - service.reported

    while waiting() and loop.time() - start < reach + 5.0:
        await asyncio.sleep(0.02)
    missing = sorted(expected - service.reported)
    note = f"; not heard from {', '.join(missing)}" if missing else ""
    heard = len(expected & service.reported)
    service.engine.events.add(
        "daemon", f"joined the cluster: heard from {heard} of {len(expected)} peers{note}"
    )


async def run(config: daemon_config.DaemonConfig) -> None:
    """Run until SIGTERM or SIGINT."""
    engine = build_engine(config)
    engine.witness = config.cluster_witness
    engine.events.add("daemon", f"ipkeeperd {__version__} starting on {config.name}")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks: list[asyncio.Task[None]] = []
    failover: Failover | None = None
    service: ClusterService | None = None
    if config.peer:
        service, failover, cluster_task = join_cluster(config, engine, stop)
        tasks.append(cluster_task)
        await wait_for_peers(service, config)
    await reconcile(engine)
    if service is not None:
        service.mark_ready()
    monitor = Monitor(engine, on_failure=failover.local_failure if failover else None)
    monitor.watch(netlink.change_socket())
    engine.metrics.watch(engine)
    apis = api_servers(config, engine, service.node.key if service else None)
    tasks.append(asyncio.create_task(monitor.run(stop), name="monitor"))
    tasks += [
        asyncio.create_task(srv.serve(sockets=[sock]), name=f"api {i}")
        for i, (srv, sock) in enumerate(apis)
    ]
    if failover is not None:
        tasks.append(asyncio.create_task(failover.run(stop), name="failover"))
    where = config.api.listen
    scheme = "https" if config.api.tls else "plain http"
    engine.events.add(
        "daemon",
        f"ready; API on {config.api.socket}" + (f" and {where} ({scheme})" if where else ""),
    )
    stopping = asyncio.create_task(stop.wait(), name="stop")
    finished, _ = await asyncio.wait([*tasks, stopping], return_when=asyncio.FIRST_COMPLETED)
    # A part that ends on its own before any stop was asked for has failed.
    failed = [t for t in finished if t is not stopping] if not stop.is_set() else []
    for task in failed:
        # A part of the daemon ended on its own: exit non-zero so systemd restarts us.
        error = task.exception() if not task.cancelled() else None
        log.critical("%s ended unexpectedly: %r", task.get_name(), error)
        engine.events.add("daemon", f"{task.get_name()} ended unexpectedly ({error!r}); exiting")
    stop.set()
    for srv, _ in apis:
        srv.should_exit = True
    await asyncio.wait([*tasks, stopping], timeout=5)
    engine.events.add("daemon", "stopped; resources left as they are")
    config.api.socket.unlink(missing_ok=True)
    engine.close()
    engine.repo.db.close()
    if failed:
        raise SystemExit(1)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    parser = argparse.ArgumentParser(prog="ipkeeperd", description="ipkeeper daemon")
    parser.add_argument("--config", type=Path, default=daemon_config.DEFAULT_CONFIG)
    parser.add_argument(
        "--witness", action="store_true", help="a quorum vote that holds no resources"
    )
    parser.add_argument("--version", action="version", version=f"ipkeeperd {__version__}")
    args = parser.parse_args(argv)
    try:
        config = daemon_config.load(args.config)
        if args.witness:
            config = config.model_copy(
                update={"server": config.server.model_copy(update={"witness": True})}
            )
    except daemon_config.ConfigError as exc:
        print(f"ipkeeperd: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    os.umask(0o077)
    listener = ipk_logging.setup(config.server.log_level)
    lock = lock_state_dir(config.server.state_dir)
    try:
        asyncio.run(run(config))
    finally:
        os.close(lock)
        listener.stop()


if __name__ == "__main__":
    main()
