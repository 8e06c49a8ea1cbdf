"""This server's place in the cluster: its comm paths, who is alive, and messages.

- A peer is alive while at least one of its paths is up; membership changes
  are announced to listeners (the engine's failover logic).
- Messages are one-way frames (`send`, `broadcast`) or requests that await a
  response (`request`); a handler runs in its own task, so a slow one never
  holds up the connection that carried it (heartbeats included).
- Frames that fail authentication are dropped and logged as `security`
  events (at most once per path and reason every 10 s).
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
from ipkeeper.cluster.commpath import CommPath, PathState, accept_handshake, tune_socket
from ipkeeper.cluster.keys import KeyRing
from ipkeeper.config.daemon import DaemonConfig
from ipkeeper.config.tunables import Tunables
from ipkeeper.engine.errors import OpError
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
    future: asyncio.Future[dict[str, Any]]
    message: dict[str, Any]
    path: CommPath | None = None


@dataclass
class PeerLink:
    """A peer and the paths that reach it."""

    name: str
    witness: bool
    paths: list[CommPath] = field(default_factory=list)

    @property
    def alive(self) -> bool:
        """True while any path is up."""
        return any(p.state is PathState.UP for p in self.paths)

    def up_paths(self) -> list[CommPath]:
        """Paths that carry frames now, the one heard from most recently first (a path
        whose cable was just pulled is still up, but has gone quiet)."""
        up = [p for p in self.paths if p.state is PathState.UP]
        return sorted(up, key=lambda p: -p.last_rx)


class ClusterNode:
    """Comm paths to every peer, membership, and message dispatch."""

    def __init__(
        self,
        config: DaemonConfig,
        key: KeyRing,
        tunables: Tunables,
        events: EventLog,
        metrics: Metrics | None = None,
    ) -> None:
        self.me = config.name
        self.metrics = metrics or Metrics()
        self.witness = config.cluster_witness
        self.port = config.cluster.port
        self.key = key
        self.tunables = tunables
        self.events = events
        self.peers: dict[str, PeerLink] = {}
        for peer in config.peer:
            link = PeerLink(peer.name, peer.witness)
            for path in peer.paths:
                link.paths.append(
                    CommPath(
                        self.me, peer.name, str(path.local), str(path.remote), self.port, key,
                        self.timing, self._on_frame, self._on_path_change, self._on_drop,
                        self._on_reconnect,
                    )
                )  # fmt: skip
            self.peers[peer.name] = link
        self.handlers: dict[str, MessageHandler] = {}
        self.methods: dict[str, Method] = {}
        self.listeners: list[PeerListener] = []  # a peer became alive or dead
        self.reconnect_listeners: list[Callable[[str], None]] = []  # a path was re-established
        self._alive: set[str] = set()
        self._pending: dict[str, Pending] = {}
        self._served: dict[str, asyncio.Task[dict[str, Any]]] = {}  # request id -> its handling
        self._drops: dict[tuple[str, str], float] = {}
        self.dropped = 0
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- timing and membership -------------------------------------------------

    def timing(self) -> tuple[float, int]:
        """(HBEAT_INTERVAL, HBEAT_MISSES) in force now."""
        return self.tunables.get("HBEAT_INTERVAL"), self.tunables.get("HBEAT_MISSES")

    def alive(self) -> set[str]:
        """Servers alive now, this one included (witnesses excluded)."""
        return {self.me} | {n for n, p in self.peers.items() if p.alive and not p.witness}

    def votes(self) -> tuple[int, int]:
        """(votes seen, votes in all): one per server and witness (R32)."""
        total = 1 + len(self.peers)
        seen = 1 + sum(1 for p in self.peers.values() if p.alive)
        return seen, total

    def has_quorum(self) -> bool:
        """With QUORUM=majority, True only when more than half the votes are seen."""
        if self.tunables.get("QUORUM") != "majority":
            return True
        seen, total = self.votes()
        return seen * 2 > total

    def _on_path_change(self, path: CommPath) -> None:
        self.metrics.path_changed(path.peer, path.local, path.remote, path.state is PathState.UP)
        if path.state is PathState.DOWN:
            self._resend_from(path)
            self.events.add(
                "path", f"comm path {path.name} to {path.peer} down: {path.down_reason}"
            )
        else:
            self.events.add("path", f"comm path {path.name} to {path.peer} up")
        link = self.peers[path.peer]
        was = path.peer in self._alive
        if link.alive == was:
            if path.state is PathState.UP:
                # Another path to a live peer: a chance to catch up on anything lost.
                for resync in self.reconnect_listeners:
                    resync(path.peer)
            return
        if link.alive:
            self._alive.add(path.peer)
        else:
            self._alive.discard(path.peer)
        state = "alive" if link.alive else "dead: every comm path is down"
        self.events.add("membership", f"{path.peer} is {state}")
        self.metrics.membership_changed(path.peer, link.alive)
        for listener in self.listeners:
            listener(path.peer, link.alive)

    def _on_reconnect(self, path: CommPath) -> None:
        """A newer connection replaced a live one: resend what the old one may have lost."""
        self._resend_from(path)
        for listener in self.reconnect_listeners:
            listener(path.peer)

    def _resend_from(self, path: CommPath) -> None:
        """Requests sent on a path that went down go again on another (the peer
        answers a repeated request once); with no path left, they fail."""
        for rid, pending in list(self._pending.items()):
            if pending.path is not path or pending.future.done():
                continue
            pending.path = self._send_request(pending)
            if pending.path is None:
                pending.future.set_exception(
                    OpError("server", f"lost contact with {pending.peer}", status=503)
                )
                self._pending.pop(rid, None)

    def _send_request(self, pending: Pending) -> CommPath | None:
        for candidate in self.peers[pending.peer].up_paths():
            if candidate.send("req", pending.message):
                return candidate
        return None

    def _on_drop(self, where: str, reason: str) -> None:
        self.dropped += 1
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
        """Listen on every local path address and dial the paths this server dials."""
        servers = []
        for local in sorted({p.local for link in self.peers.values() for p in link.paths}):
            servers.append(asyncio.create_task(self._listen(local, stop), name=f"listen {local}"))
        dialers = [
            asyncio.create_task(p.dial_forever(stop), name=f"dial {p.name}")
            for link in self.peers.values()
            for p in link.paths
            if p.dialer
        ]
        await stop.wait()
        for task in [*servers, *dialers, *self._tasks]:
            task.cancel()
        for link in self.peers.values():
            for path in link.paths:
                path.close()

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
        interval, misses = self.timing()
        try:
            session = await accept_handshake(
                reader, writer, self.me, self.key, path.peer, max(interval * misses, 0.5)
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
            # An authentic but unexpected message must not take the path down.
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
        """Run a request once, whichever path (or paths) it came on, and answer it."""
        rid = str(data.get("id"))
        handling = self._served.get(rid)
        if handling is None:
            handling = asyncio.ensure_future(self._handle(path.peer, data))
            self._served[rid] = handling
            while len(self._served) > SERVED_MEMORY:
                self._served.pop(next(iter(self._served)))
        reply = await asyncio.shield(handling)
        link = self.peers[path.peer]
        for candidate in [path, *link.up_paths()]:
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
        """Send a one-way message; True when it went out on at least one path."""
        link = self.peers.get(peer)
        if link is None:
            return False
        sent = False
        for path in link.up_paths():
            sent = path.send(kind, data) or sent
            if sent and not every_path:
                break
        return sent

    def broadcast(self, kind: str, data: dict[str, Any], every_path: bool = True) -> None:
        """Send a message to every peer that is alive."""
        for name in self.peers:
            self.send(name, kind, data, every_path)

    async def request(
        self, peer: str, method: str, params: dict[str, Any], timeout: float = 60.0
    ) -> dict[str, Any]:
        """Ask `peer` to run `method`; its result, or OpError with its field and reason."""
        link = self.peers.get(peer)
        if link is None:
            raise OpError("server", f"{peer} is not a server of this cluster", status=404)
        if not link.alive:
            raise OpError(
                "server", f"{peer} is not reachable (every comm path is down)", status=503
            )
        rid = uuid.uuid4().hex
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        pending = Pending(peer, future, {"id": rid, "method": method, "params": params})
        pending.path = self._send_request(pending)
        if pending.path is None:
            raise OpError("server", f"{peer} is not reachable", status=503)
        self._pending[rid] = pending
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise OpError(
                "server", f"{peer} did not answer {method} within {timeout:.0f}s", status=504
            ) from None
        finally:
            self._pending.pop(rid, None)

    # -- status ------------------------------------------------------------------

    def servers(self) -> list[dict[str, Any]]:
        """Every server with its liveness and comm paths, for status."""
        result: list[dict[str, Any]] = [
            {
                "name": self.me,
                "alive": True,
                "local": True,
                "witness": self.witness,
                "comm_paths": [],
            }
        ]
        for link in self.peers.values():
            result.append(
                {
                    "name": link.name,
                    "alive": link.alive,
                    "local": False,
                    "witness": link.witness,
                    "comm_paths": [p.describe() for p in link.paths],
                }
            )
        return result

    def quorum(self) -> dict[str, Any]:
        """The quorum mode and votes, for status (R32)."""
        seen, total = self.votes()
        mode = self.tunables.get("QUORUM")
        note = ""
        if mode == "none" and total == 2:
            note = "two servers without a witness: no quorum; the unique-address check guards against split brain"
        return {
            "mode": mode,
            "votes": seen,
            "of": total,
            "has_quorum": self.has_quorum(),
            "note": note,
        }
