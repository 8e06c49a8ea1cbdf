"""This server's place in the cluster: comm paths, who is alive, and messages.

- Liveness comes from the heartbeat thread (cluster/heartbeat.py): a peer is
  alive while any path to it carries heartbeats and they do not say its main
  loop is stuck. Its changes reach this loop as `Change`s and become events
  and membership notifications.
- Messages travel on each path's TCP channel (cluster/commpath.py): one-way
  frames (`send`, `broadcast`) or requests that await a response
  (`request`). A request carries an id and is answered once, whichever path
  (or paths) it arrives on; when its channel breaks it is sent again on
  another, and while the peer is alive but no channel is connected it
  waits for one. When the peer dies after a request was sent, its outcome
  is unknown, and the error says so and where to look.
- A handler runs in its own task, so a slow one never holds up a channel.
- Frames and heartbeats that fail authentication are dropped and logged as
  `security` events (at most once per path and reason every 10 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ipkeeper.cluster import wire
from ipkeeper.cluster.commpath import CommPath, accept_handshake, tune_socket
from ipkeeper.cluster.heartbeat import Change, Heartbeat, PathReport, PathSpec, Timing
from ipkeeper.cluster.keys import KeyRing
from ipkeeper.config.daemon import DaemonConfig
from ipkeeper.config.tunables import Tunables
from ipkeeper.engine.errors import OpError
from ipkeeper.engine.peertable import PeerTable
from ipkeeper.metrics import Metrics
from ipkeeper.store.events import EventLog

log = logging.getLogger("ipkeeper.cluster")

MessageHandler = Callable[[str, dict[str, Any]], Awaitable[None] | None]
Method = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]
PeerListener = Callable[[str, bool], None]
SERVED_MEMORY = 10_000  # request ids remembered, so a request repeated on another path runs once


def _canonical(address: str) -> str:
    return str(ipaddress.ip_address(address.split("%")[0]))


@dataclass
class Pending:
    """A request waiting for its response, and where it went."""

    peer: str
    method: str
    future: asyncio.Future[dict[str, Any]]
    message: dict[str, Any]
    path: CommPath | None = None
    sent: bool = False  # went out at least once: the peer may have acted on it


@dataclass
class PeerLink:
    """A peer and the paths that reach it."""

    name: str
    witness: bool
    paths: list[CommPath] = field(default_factory=list)


class ClusterNode:
    """Comm paths to every peer, membership, and message dispatch."""

    def __init__(
        self,
        config: DaemonConfig,
        key: KeyRing,
        tunables: Tunables,
        events: EventLog,
        table: PeerTable,
        metrics: Metrics | None = None,
    ) -> None:
        self.me = config.name
        self.metrics = metrics or Metrics()
        self.witness = config.cluster_witness
        self.port = config.cluster.port
        self.key = key
        self.tunables = tunables
        self.events = events
        self.table = table  # liveness is written there, for the engine to read
        self.peers: dict[str, PeerLink] = {}
        specs: list[PathSpec] = []
        for peer in config.peer:
            link = PeerLink(peer.name, peer.witness)
            for path in peer.paths:
                local, remote = str(path.local), str(path.remote)
                specs.append(PathSpec(peer.name, local, remote))
                link.paths.append(self._channel(peer.name, local, remote))
            self.peers[peer.name] = link
        self.heartbeat = Heartbeat(self.me, specs, self.port, key, self.timing, self._from_thread)
        self.heartbeat.on_drop = self._drop_from_thread
        self.handlers: dict[str, MessageHandler] = {}
        self.methods: dict[str, Method] = {}
        self.listeners: list[PeerListener] = []  # a peer became alive or dead (or restarted)
        self.reconnect_listeners: list[Callable[[str], None]] = []  # a channel (re)connected
        self.restart_listeners: list[Callable[[str], None]] = []  # a live peer restarted
        self._path_up: set[tuple[str, str]] = set()  # (local, remote) of paths with heartbeats
        self._path_reason: dict[tuple[str, str], str] = {}
        self._pending: dict[str, Pending] = {}
        self._served: dict[str, asyncio.Task[dict[str, Any]]] = {}  # request id -> its handling
        self._drops: dict[tuple[str, str], float] = {}
        self._dropped = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stop: asyncio.Event | None = None
        self._listening: dict[str, asyncio.Task[None]] = {}  # local address -> its listener
        self._dialing: dict[int, asyncio.Task[None]] = {}  # id(channel) -> its dialer

    def _channel(self, peer: str, local: str, remote: str) -> CommPath:
        return CommPath(
            self.me, peer, local, remote, self.port, self.key, self._connect_timeout,
            self._on_frame, self._on_connection, self._on_drop,
        )  # fmt: skip

    # -- comm paths changed at run time (SIGHUP) ---------------------------------

    def path_changes(self, config: DaemonConfig) -> tuple[list[PathSpec], list[PathSpec]]:
        """(added, removed) comm paths of the peers in `config`; ValueError when the
        peers themselves differ (adding or removing a peer needs a restart)."""
        new = {p.name: p for p in config.peer}
        if set(new) != set(self.peers) or any(
            new[n].witness != link.witness for n, link in self.peers.items()
        ):
            raise ValueError("the peers or their witness roles changed")
        wanted = {
            PathSpec(p.name, str(path.local), str(path.remote))
            for p in config.peer
            for path in p.paths
        }
        current = {
            PathSpec(n, c.local, c.remote) for n, link in self.peers.items() for c in link.paths
        }
        return sorted(wanted - current, key=str), sorted(current - wanted, key=str)

    def change_paths(self, added: list[PathSpec], removed: list[PathSpec]) -> None:
        """Start and stop comm paths while running; the others carry on untouched."""
        for spec in removed:
            link = self.peers[spec.peer]
            for channel in [
                c for c in link.paths if (c.local, c.remote) == (spec.local, spec.remote)
            ]:
                link.paths.remove(channel)
                task = self._dialing.pop(id(channel), None)
                if task is not None:
                    task.cancel()
                channel.close()
            self.heartbeat.remove_path(spec.local, spec.remote)
            self._path_up.discard((spec.local, spec.remote))
            self._path_reason.pop((spec.local, spec.remote), None)
            self.events.add("path", f"comm path {spec.local}->{spec.remote} to {spec.peer} removed")
        for spec in added:
            channel = self._channel(spec.peer, spec.local, spec.remote)
            self.peers[spec.peer].paths.append(channel)
            self.heartbeat.add_path(spec)
            self.events.add("path", f"comm path {spec.local}->{spec.remote} to {spec.peer} added")
            if self._stop is not None:
                self._start_path(channel, self._stop)
        in_use = {c.local for link in self.peers.values() for c in link.paths}
        for local in set(self._listening) - in_use:
            self._listening.pop(local).cancel()

    def _start_path(self, channel: CommPath, stop: asyncio.Event) -> None:
        if channel.local not in self._listening:
            self._listening[channel.local] = asyncio.create_task(
                self._listen(channel.local, stop), name=f"listen {channel.local}"
            )
        if channel.dialer:
            self._dialing[id(channel)] = asyncio.create_task(
                channel.dial_forever(stop), name=f"dial {channel.name}"
            )

    # -- timing and membership -------------------------------------------------

    def timing(self) -> Timing:
        """The heartbeat settings in force now (called by the heartbeat thread too)."""
        t = self.tunables
        return Timing(
            t.get("HBEAT_INTERVAL"),
            t.get("HBEAT_MISSES"),
            t.get("LOOP_STALL_LIMIT"),
            bool(t.get("HBEAT_REALTIME")),
        )

    def dead_time(self) -> float:
        """The silence after which a peer is judged dead on a clean network."""
        timing = self.timing()
        return timing.interval * timing.misses

    def _connect_timeout(self) -> float:
        return max(self.dead_time(), 0.2)

    @property
    def dropped(self) -> int:
        """Frames and heartbeats dropped so far."""
        return self._dropped + self.heartbeat.dropped

    def alive(self) -> set[str]:
        """Servers alive now, this one included (witnesses excluded)."""
        return self.table.alive()

    def votes(self) -> tuple[int, int]:
        """(votes seen, votes in all): one per server and witness (R32)."""
        return self.table.votes()

    def has_quorum(self) -> bool:
        """With QUORUM=majority, True only when more than half the votes are seen."""
        return self.table.has_quorum(str(self.tunables.get("QUORUM")))

    def mark_ready(self) -> None:
        """This server's states are true now: its heartbeats say so."""
        self.heartbeat.ready = True

    def _from_thread(self, changes: list[Change]) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._on_changes, changes)

    def _drop_from_thread(self, where: str, reason: str) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._log_drop, where, reason)

    def _on_changes(self, changes: list[Change]) -> None:
        for change in changes:
            try:
                if change.kind == "path" and change.path is not None:
                    self._on_path(change)
                elif change.kind == "peer":
                    self._on_peer(change.peer, change.up, change.reason)
                elif change.kind == "restart":
                    self._on_restart(change.peer)
            except Exception:
                log.exception("handling %s failed", change)

    def _on_path(self, change: Change) -> None:
        assert change.path is not None
        where = (change.path.local, change.path.remote)
        name = f"{change.path.local}->{change.path.remote}"
        self.metrics.path_changed(change.peer, change.path.local, change.path.remote, change.up)
        if change.up:
            self._path_up.add(where)
            self._path_reason.pop(where, None)
            self.events.add("path", f"comm path {name} to {change.peer} up")
            return
        self._path_up.discard(where)
        self._path_reason[where] = change.reason
        self.events.add("path", f"comm path {name} to {change.peer} down: {change.reason}")
        for channel in self.peers[change.peer].paths:
            if (channel.local, channel.remote) == where:
                channel.close()  # never write to a connection the heartbeats call dead

    def _on_peer(self, peer: str, alive: bool, reason: str) -> None:
        if not self.table.alive_changed(peer, alive):
            return
        self.metrics.membership_changed(peer, alive)
        if alive:
            self.events.add("membership", f"{peer} is alive: {reason}")
        else:
            self.events.add("membership", f"{peer} is dead: {reason}")
            self._fail_pending(peer)
        for listener in self.listeners:
            listener(peer, alive)

    def _on_restart(self, peer: str) -> None:
        """The peer's daemon restarted without being judged dead: its sessions are
        stale and what it reported before is history."""
        self.events.add("membership", f"{peer} restarted its daemon")
        for channel in self.peers[peer].paths:
            channel.close()
        if self.table.is_alive(peer):
            for listener in self.restart_listeners:
                listener(peer)

    def _on_connection(self, channel: CommPath) -> None:
        if channel.connected:
            self._flush(channel.peer)
            for listener in self.reconnect_listeners:
                listener(channel.peer)
        else:
            self._resend_from(channel)

    def _resend_from(self, channel: CommPath) -> None:
        """Requests sent on a channel that closed go again on another (the peer
        answers a repeated request once); with none connected, they wait."""
        for pending in list(self._pending.values()):
            if pending.path is channel and not pending.future.done():
                pending.path = self._send_request(pending)

    def _flush(self, peer: str) -> None:
        for pending in list(self._pending.values()):
            if pending.peer == peer and pending.path is None and not pending.future.done():
                pending.path = self._send_request(pending)

    def _fail_pending(self, peer: str) -> None:
        """The peer died: its pending requests end, saying what is known of them."""
        for rid, pending in list(self._pending.items()):
            if pending.peer != peer or pending.future.done():
                continue
            if pending.sent:
                error = OpError(
                    "outcome",
                    f"{peer} stopped answering after it was asked to {pending.method}: the "
                    f"outcome is unknown; see `ipkeeper status` and `ipkeeper events` on {peer} "
                    "once it is back",
                    status=504,
                )
            else:
                error = OpError("server", f"{peer} died before the request could be sent", 503)
            pending.future.set_exception(error)
            self._pending.pop(rid, None)

    def _send_request(self, pending: Pending) -> CommPath | None:
        for channel in self.channels(pending.peer):
            if channel.send("req", pending.message):
                pending.sent = True
                return channel
        return None

    def channels(self, peer: str) -> list[CommPath]:
        """Connected channels to `peer`, those whose path carries heartbeats first."""
        link = self.peers.get(peer)
        if link is None:
            return []
        connected = [c for c in link.paths if c.connected]
        return sorted(connected, key=lambda c: (c.local, c.remote) not in self._path_up)

    def _on_drop(self, where: str, reason: str) -> None:
        self._dropped += 1
        self._log_drop(where, reason)

    def _log_drop(self, where: str, reason: str) -> None:
        # One event per local end and kind of drop every 10 s, however many
        # remote addresses an attacker uses.
        key = (where.split("<-")[0].split("->")[0], re.sub(r"\d+", "N", reason)[:80])
        if len(self._drops) > 1000:
            self._drops.clear()
        now = time.monotonic()
        if now - self._drops.get(key, -1e9) >= 10.0:
            self._drops[key] = now
            self.events.add("security", f"dropped a frame on {where}: {reason}")

    # -- running ---------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Start the heartbeats, listen on every local path address, dial what this server dials."""
        self._loop = asyncio.get_running_loop()
        self._stop = stop
        self.heartbeat.start()
        ticker = asyncio.create_task(self._tick(stop), name="loop ticker")
        for link in self.peers.values():
            for channel in link.paths:
                self._start_path(channel, stop)
        try:
            await stop.wait()
        finally:
            self.heartbeat.stop()
            tasks = [*self._listening.values(), *self._dialing.values(), *self._tasks]
            for task in [ticker, *tasks]:
                task.cancel()
            for link in self.peers.values():
                for path in link.paths:
                    path.close()

    async def _tick(self, stop: asyncio.Event) -> None:
        """Tell the heartbeat thread, twice a second (or more often when LOOP_STALL_LIMIT is
        short), that this loop still turns."""
        while not stop.is_set():
            self.heartbeat.loop_alive()
            await asyncio.sleep(min(0.5, self.tunables.get("LOOP_STALL_LIMIT") / 4))

    async def _listen(self, local: str, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                server = await asyncio.start_server(
                    self._accept, local, self.port, reuse_address=True
                )
            except OSError as exc:
                log.warning("cannot listen on %s:%d yet: %s", local, self.port, exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)
                continue
            async with server:
                await stop.wait()

    def _path_for(self, local: str, remote: str) -> CommPath | None:
        for link in self.peers.values():
            for path in link.paths:
                if _canonical(path.local) == local and _canonical(path.remote) == remote:
                    return path
        return None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        local = _canonical(writer.get_extra_info("sockname")[0])
        remote = _canonical(writer.get_extra_info("peername")[0])
        path = self._path_for(local, remote)
        if path is None:
            self._on_drop(f"{local}<-{remote}", "connection from an address that is no comm path")
            writer.close()
            return
        if path.dialer:
            # This server dials that path itself; the peer never does.
            self._on_drop(path.name, f"unexpected connection: {self.me} dials this path")
            writer.close()
            return
        tune_socket(writer)
        try:
            session = await accept_handshake(
                reader, writer, self.me, self.key, path.peer, max(self.dead_time(), 0.5)
            )
        except wire.FrameError as exc:
            self._on_drop(path.name, f"handshake: {exc}")
            writer.close()
            return
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            writer.close()
            return
        await path.serve(reader, writer, session)

    # -- messages ----------------------------------------------------------------

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_frame(self, path: CommPath, body: dict[str, Any]) -> None:
        kind, data, peer = body.get("type"), body.get("data", {}), path.peer
        try:
            if kind == "req":
                self._spawn(self._serve_request(path, data))
            elif kind == "resp":
                self._answered(peer, data)
            elif isinstance(kind, str) and kind in self.handlers:
                result = self.handlers[kind](peer, data)
                if result is not None:
                    self._spawn(result)
            else:
                log.debug("ignored %r from %s", kind, peer)
        except Exception:
            # An authentic but unexpected message must not take the channel down.
            log.exception("handling %r from %s failed", kind, peer)

    def _answered(self, peer: str, data: dict[str, Any]) -> None:
        entry = self._pending.get(str(data.get("id")))
        if entry is None or entry.peer != peer or entry.future.done():
            return
        self._pending.pop(str(data.get("id")), None)
        if data.get("ok"):
            entry.future.set_result(data.get("result", {}))
            return
        err = data.get("error", {})
        entry.future.set_exception(
            OpError(
                err.get("field", "server"),
                str(err.get("reason", f"{peer} failed")),
                err.get("status", 400),
            )
        )

    async def _serve_request(self, path: CommPath, data: dict[str, Any]) -> None:
        """Run a request once, whichever channel (or channels) it came on, and answer it."""
        rid = str(data.get("id"))
        handling = self._served.get(rid)
        if handling is None:
            handling = asyncio.ensure_future(self._handle(path.peer, data))
            self._served[rid] = handling
            while len(self._served) > SERVED_MEMORY:
                self._served.pop(next(iter(self._served)))
        reply = await asyncio.shield(handling)
        for candidate in [path, *self.channels(path.peer)]:
            if candidate.send("resp", reply):
                return

    async def _handle(self, peer: str, data: dict[str, Any]) -> dict[str, Any]:
        method = self.methods.get(str(data.get("method")))
        reply: dict[str, Any] = {"id": data.get("id")}
        try:
            if method is None:
                raise OpError("method", f"{data.get('method')!r} is not known to {self.me}")
            reply.update(ok=True, result=await method(peer, data.get("params", {})))
        except OpError as exc:
            reply.update(
                ok=False, error={"field": exc.field, "reason": exc.reason, "status": exc.status}
            )
        except Exception as exc:
            log.exception("request %s from %s failed", data.get("method"), peer)
            reply.update(
                ok=False,
                error={"field": "server", "reason": f"{self.me} failed: {exc}", "status": 500},
            )
        return reply

    def send(self, peer: str, kind: str, data: dict[str, Any], every_path: bool = False) -> bool:
        """Send a one-way message; True when it went out on at least one channel."""
        sent = False
        for channel in self.channels(peer):
            sent = channel.send(kind, data) or sent
            if sent and not every_path:
                break
        return sent

    def broadcast(self, kind: str, data: dict[str, Any], every_path: bool = True) -> None:
        """Send a message to every peer with a connected channel."""
        for name in self.peers:
            self.send(name, kind, data, every_path)

    async def request(
        self, peer: str, method: str, params: dict[str, Any], timeout: float = 60.0
    ) -> dict[str, Any]:
        """Ask `peer` to run `method`; its result, or OpError with its field and reason.

        The request waits for a channel while the peer is alive; an error after
        it was sent says that its outcome is unknown (see the module docstring).
        """
        link = self.peers.get(peer)
        if link is None:
            raise OpError("server", f"{peer} is not a server of this cluster", status=404)
        if not self.table.is_alive(peer):
            raise OpError(
                "server", f"{peer} is not reachable (no heartbeat on any comm path)", status=503
            )
        rid = uuid.uuid4().hex
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        pending = Pending(peer, method, future, {"id": rid, "method": method, "params": params})
        self._pending[rid] = pending
        pending.path = self._send_request(pending)
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            if pending.sent:
                raise OpError(
                    "outcome",
                    f"{peer} did not answer {method} within {timeout:.0f}s: the outcome is "
                    f"unknown; see `ipkeeper status` and `ipkeeper events` on {peer}",
                    status=504,
                ) from None
            raise OpError(
                "server", f"no channel to {peer} connected within {timeout:.0f}s", status=503
            ) from None
        finally:
            self._pending.pop(rid, None)

    # -- status ------------------------------------------------------------------

    def servers(self) -> list[dict[str, Any]]:
        """Every server with its liveness and comm paths, for status."""
        reports = {(r.local, r.remote): r for r in self.heartbeat.snapshot()}
        result: list[dict[str, Any]] = [
            {
                "name": self.me,
                "alive": True,
                "local": True,
                "witness": self.witness,
                "stuck": self.heartbeat.stuck,
                "heartbeat": self.heartbeat.realtime_note,
                "heartbeat_late_ms": round(self.heartbeat.worst_lateness * 1000, 1),
                "comm_paths": [],
            }
        ]
        for link in self.peers.values():
            _, stuck, _ = self.heartbeat.peer(link.name)
            result.append(
                {
                    "name": link.name,
                    "alive": self.table.is_alive(link.name),
                    "local": False,
                    "witness": link.witness,
                    "stuck": stuck,
                    "comm_paths": [
                        _describe(c, reports.get((c.local, c.remote))) for c in link.paths
                    ],
                }
            )
        return result

    def quorum(self) -> dict[str, Any]:
        """The quorum mode and votes, for status (R32)."""
        seen, total = self.votes()
        mode = self.tunables.get("QUORUM")
        note = ""
        if mode == "none" and total == 2 and self.tunables.get("NOIPUNIQUE"):
            note = "two servers without a witness: no quorum, and NOIPUNIQUE=1 turns the unique-address check off"
        elif mode == "none" and total == 2:
            note = "two servers without a witness: no quorum; the unique-address check guards each hierarchy whose applications have an IP resource below them"
        return {
            "mode": mode,
            "votes": seen,
            "of": total,
            "has_quorum": self.has_quorum(),
            "note": note,
        }


def _describe(channel: CommPath, report: PathReport | None) -> dict[str, Any]:
    """A comm path as status shows it: heartbeats (state, round trip, loss) and its channel."""
    up = report is not None and report.up
    return {
        "peer": channel.peer,
        "local": channel.local,
        "remote": channel.remote,
        "state": "up" if up else "down",
        "since": report.since if report else None,
        "rtt_ms": round(report.rtt * 1000, 3) if up and report and report.rtt is not None else None,
        "loss": round(report.loss, 3) if report else None,
        "dead_after_ms": round(report.limit * 1000) if report else None,
        "reason": None if up else (report.reason if report else "no heartbeat yet"),
        "channel": "connected" if channel.connected else f"not connected ({channel.last_error})",
    }
