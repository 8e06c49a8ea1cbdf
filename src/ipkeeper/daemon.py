"""`ipkeeperd`: one process per server that keeps its resources alive.

Wiring only: configuration, store, kits, engine, monitor and API are built
here and nowhere else; everything else receives what it needs.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import ipaddress
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ipkeeper import __version__, checkconfig
from ipkeeper import logging as ipk_logging
from ipkeeper.api import surface as api_surface
from ipkeeper.api.app import create_app
from ipkeeper.cluster.keys import KeyFileError, KeyRing
from ipkeeper.cluster.node import ClusterNode
from ipkeeper.cluster.service import ClusterService
from ipkeeper.config import daemon as daemon_config
from ipkeeper.config.tunables import Tunables
from ipkeeper.engine import guard
from ipkeeper.engine.conflicts import ConflictGuard
from ipkeeper.engine.core import Engine
from ipkeeper.engine.failover import Failover
from ipkeeper.engine.monitor import Monitor
from ipkeeper.engine.peertable import PeerTable
from ipkeeper.engine.reconcile import reconcile
from ipkeeper.engine.soundness import open_sound
from ipkeeper.engine.storewatch import StoreWatch
from ipkeeper.kits.app.kit import AppKit
from ipkeeper.kits.group.kit import GroupKit
from ipkeeper.kits.ip import netlink
from ipkeeper.kits.ip.kit import IPKit
from ipkeeper.kits.ip.params import IPAddress, IPSpec
from ipkeeper.kits.registry import KitRegistry
from ipkeeper.reload import Reloader
from ipkeeper.sdnotify import Notifier
from ipkeeper.serve import ApiServer, TcpApi, api_server
from ipkeeper.store.events import EventLog
from ipkeeper.store.repo import Repo
from ipkeeper.store.soundness import UnusableDatabase
from ipkeeper.supervisor import Supervisor

log = logging.getLogger("ipkeeper.daemon")
Adjust = Callable[[daemon_config.DaemonConfig], daemon_config.DaemonConfig]


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


def api_servers(
    config: daemon_config.DaemonConfig, engine: Engine, keys: KeyRing | None = None
) -> tuple[list[tuple[ApiServer, socket.socket]], TcpApi]:
    """The API on the Unix socket and, when configured, on TCP as api/surface.py secures
    it (TLS, tokens, roles), on a listener that a reload can move or re-secure."""
    app = create_app(engine)
    try:
        surface = api_surface.build(config.api, engine, keys)
    except api_surface.SurfaceError as exc:
        raise SystemExit(f"ipkeeperd: error: {exc}") from None
    servers = [(api_server(surface.local(app)), unix_listener(config.api.socket))]
    tcp = TcpApi(app, surface)
    if config.api.listen is not None:
        try:
            tcp.rebind(surface)
        except OSError as exc:
            raise SystemExit(
                f"ipkeeperd: error: api.listen: cannot listen on {config.api.listen}: "
                f"{exc.strerror or exc}"
            ) from None
    return servers, tcp


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


KINDS = ("app", "group", "ip")  # the kits of build_engine, as KitRegistry.kinds() lists them


def open_store(config: daemon_config.DaemonConfig) -> tuple[Repo, str | None]:
    """This server's store, known sound (engine/soundness.py), and what was done about a
    damaged one; exits with one line when it cannot be used."""
    resync = config.server.damaged_database == "resync" and bool(config.peer)
    try:
        return open_sound(config.database, KINDS, resync)
    except UnusableDatabase as exc:
        raise SystemExit(f"ipkeeperd: error: database: {exc}") from None


def build_engine(config: daemon_config.DaemonConfig) -> Engine:
    """Store, tunables, kits and engine for this server."""
    repo, damaged = open_store(config)
    db = repo.db
    tunables = Tunables(config.server.tunables)

    def ping_list(spec: IPSpec) -> list[IPAddress]:
        return [ipaddress.ip_address(a) for a in repo.ping_list(str(spec.network))]

    host = netlink.HostNet().start()  # this host's links and addresses, kept in memory
    kits = KitRegistry(IPKit(tunables, ping_list, host), AppKit(config.name), GroupKit())
    assert tuple(kits.kinds()) == KINDS
    table = PeerTable(config.name, [(p.name, p.witness) for p in config.peer])
    engine = Engine(
        config.name, repo, EventLog(db, config.name, tunables), kits, tunables, table=table
    )
    if damaged is not None:
        engine.events.add("database", damaged)
    return engine


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
    node = ClusterNode(config, key, engine.tunables, engine.events, engine.table, engine.metrics)
    service = ClusterService(node, engine)
    engine.peers = service
    failover = Failover(engine)
    service.on_peer.append(failover.peer_changed)
    return service, failover, asyncio.create_task(node.run(stop), name="cluster")


async def wait_for_peers(service: ClusterService, config: daemon_config.DaemonConfig) -> None:
    """Before deciding anything at start-up, hear from the peers.

    A peer counts as heard once its heartbeats prove it alive and its states
    have arrived (in either order: they travel separately). Peers that cannot
    be reached within a few dead times are given up on (they may be down); a
    peer that has shown any sign of life is waited for, up to a few seconds
    more, because deciding without its states could mean adopting what it
    holds now.
    """
    loop = asyncio.get_running_loop()
    start = loop.time()
    reach = max(1.0, 2 * service.node.dead_time() + 0.5)
    expected = {p.name for p in config.peer}

    def heard() -> set[str]:
        return service.reported & service.node.alive()

    def waiting() -> set[str]:
        if loop.time() - start < reach:
            return expected - heard()
        signs_of_life = service.node.alive() | service.reported
        return (expected & signs_of_life) - heard()

    while waiting() and loop.time() - start < reach + 5.0:
        await asyncio.sleep(0.02)
    missing = sorted(expected - heard())
    note = f"; not heard from {', '.join(missing)}" if missing else ""
    service.engine.events.add(
        "daemon", f"joined the cluster: heard from {len(heard())} of {len(expected)} peers{note}"
    )


def install_test_stall(loop: asyncio.AbstractEventLoop) -> None:
    """A testing hook, off unless IPKEEPER_TEST_STALL=<seconds> is in the environment:
    SIGUSR2 then blocks the main loop that long (the heartbeat thread runs on), so a
    test can show that a busy loop is not a dead server, and a stuck one is said to be."""
    stall = os.environ.get("IPKEEPER_TEST_STALL")
    if not stall:
        return
    seconds = float(stall)

    def block() -> None:
        log.warning("IPKEEPER_TEST_STALL: blocking the main loop for %.1fs", seconds)
        time.sleep(seconds)

    loop.add_signal_handler(signal.SIGUSR2, block)


def watch_host(engine: Engine, monitor: Monitor) -> None:
    """Check at once what a change of a link or an address on this host concerns."""
    host = engine.ip_kit().host
    if host is None:
        return
    loop = asyncio.get_running_loop()

    pending: tuple[set[str], set[str]] = (set(), set())
    lock = threading.Lock()

    def flush() -> None:  # on the loop
        with lock:
            interfaces, addresses = set(pending[0]), set(pending[1])
            pending[0].clear()
            pending[1].clear()
        monitor.host_changed(interfaces, addresses)

    def changed(changes: list[netlink.HostChange]) -> None:  # on the host thread
        interfaces = {c.ifname for c in changes if c.address is None}
        addresses = {str(c.address) for c in changes if c.address is not None and not c.present}
        if not interfaces and not addresses:
            return
        with lock:
            first = not pending[0] and not pending[1]
            pending[0].update(interfaces)
            pending[1].update(addresses)
        if first:  # one call on the loop for however many changes come before it runs
            loop.call_soon_threadsafe(flush)

    host.listeners.append(changed)


async def run(
    config: daemon_config.DaemonConfig,
    path: Path = daemon_config.DEFAULT_CONFIG,
    logs: ipk_logging.LogSetup | None = None,
    notifier: Notifier | None = None,
    adjust: Adjust = lambda c: c,
) -> None:
    """Run until SIGTERM or SIGINT; SIGHUP reloads `path` (applied once ready)."""
    engine = build_engine(config)
    engine.witness = config.cluster_witness
    engine.events.add("daemon", f"ipkeeperd {__version__} starting on {config.name}")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    supervisor = Supervisor(engine, notifier or Notifier({}))
    supervisor.install(loop, stop)
    install_test_stall(loop)
    tasks: list[asyncio.Task[None]] = []
    failover: Failover | None = None
    service: ClusterService | None = None
    if config.peer:
        service, failover, cluster_task = join_cluster(config, engine, stop)
        tasks.append(cluster_task)
        await wait_for_peers(service, config)
    await reconcile(engine)
    guard.warn_at_start(engine)  # applications nothing keeps from running twice: said once
    if service is not None:
        service.mark_ready()
    monitor = Monitor(engine, on_failure=failover.local_failure if failover else None)
    watch_host(engine, monitor)
    ConflictGuard(engine).start(loop)  # others announcing a VIP held here (issue 11, item 9)
    engine.metrics.watch(engine)
    apis, tcp = api_servers(config, engine, service.node.key if service else None)
    tasks.append(asyncio.create_task(monitor.run(stop), name="monitor"))
    tasks.append(asyncio.create_task(StoreWatch(engine).run(stop), name="store watch"))
    tasks += [
        asyncio.create_task(srv.serve(sockets=[sock]), name=f"api {i}")
        for i, (srv, sock) in enumerate(apis)
    ]
    tasks.append(asyncio.create_task(tcp.run(stop), name="api tcp"))
    if failover is not None:
        tasks.append(asyncio.create_task(failover.run(stop), name="failover"))
    where = config.api.listen
    scheme = "https" if config.api.tls else "plain http"
    engine.events.add(
        "daemon",
        f"ready; API on {config.api.socket}" + (f" and {where} ({scheme})" if where else ""),
    )
    cluster = service.node if service is not None else None
    supervisor.ready(Reloader(path, config, engine, logs, tcp, adjust, cluster))
    tasks.append(asyncio.create_task(supervisor.run(stop), name="supervisor"))
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
    supervisor.stopping("stopping; resources left as they are")
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
    parser.add_argument(
        "--config",
        type=Path,
        default=daemon_config.DEFAULT_CONFIG,
        metavar="FILE",
        help=f"the configuration file (default: {daemon_config.DEFAULT_CONFIG})",
    )
    parser.add_argument(
        "--witness", action="store_true", help="a quorum vote that holds no resources"
    )
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="check the configuration, its files and this server's addresses; change nothing",
    )
    parser.add_argument("--version", action="version", version=f"ipkeeperd {__version__}")
    args = parser.parse_args(argv)
    if args.check_config:
        raise SystemExit(checkconfig.main(args.config, args.witness))

    def adjust(config: daemon_config.DaemonConfig) -> daemon_config.DaemonConfig:
        if not args.witness:
            return config
        server = config.server.model_copy(update={"witness": True})
        return config.model_copy(update={"server": server})

    try:
        config = adjust(daemon_config.load(args.config))
    except daemon_config.ConfigError as exc:
        print(f"ipkeeperd: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    # Before anything else: who may change what this daemon trusts, then its secrets.
    refused = checkconfig.trust(config, args.config) + checkconfig.secrets(config)
    if refused:
        for line in refused:
            print(f"ipkeeperd: error: {line}", file=sys.stderr)
        raise SystemExit(2)
    os.umask(0o077)
    notifier = Notifier()  # before anything runs a command: they must not inherit $NOTIFY_SOCKET
    logs = ipk_logging.setup(config.server.log_level, config.server.log_format)
    lock = lock_state_dir(config.server.state_dir)
    try:
        asyncio.run(run(config, args.config, logs, notifier, adjust))
    finally:
        os.close(lock)
        notifier.close()
        logs.stop()


if __name__ == "__main__":
    main()
