"""One communication path's message channel (R25): a TCP connection to a peer.

Whether the path and the peer are alive is judged by the heartbeat thread
(cluster/heartbeat.py), over UDP, not here: a lost segment that TCP takes
200 ms or more to send again must not look like a dead peer. This channel
carries what needs delivery (requests, responses, state reports, catalog
documents), in order, authenticated (wire.py's handshake, session id and
sequence numbers).

The server whose name sorts first dials, the other accepts; a dialing
channel reconnects by itself. The node closes a channel when the heartbeats
say its path went down (so a connection to a dead peer is never written
to), or when the peer restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

from ipkeeper.cluster import wire
from ipkeeper.cluster.keys import KeyRing

log = logging.getLogger("ipkeeper.commpath")

ConnectTimeout = Callable[[], float]
FrameHandler = Callable[["CommPath", dict[str, Any]], None]
Notify = Callable[["CommPath"], None]
DropLog = Callable[[str, str], None]


def tune_socket(writer: asyncio.StreamWriter) -> None:
    """No Nagle delay; give up on data unacknowledged for 10 s (the heartbeats judge
    liveness; this only ends a connection that really cannot carry anything)."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 10_000)


class CommPath:
    """The message channel of the path to `peer` from `local` to `remote`."""

    def __init__(
        self,
        me: str,
        peer: str,
        local: str,
        remote: str,
        port: int,
        key: KeyRing,
        connect_timeout: ConnectTimeout,
        on_frame: FrameHandler,
        on_connection: Notify,
        on_drop: DropLog,
    ) -> None:
        self.me, self.peer, self.local, self.remote, self.port = me, peer, local, remote, port
        self.key = key
        self.connect_timeout = connect_timeout
        self.on_frame = on_frame
        self.on_connection = on_connection  # connected, disconnected or replaced
        self.on_drop = on_drop
        self.dialer = me < peer
        self.connected_since: float | None = None
        self.last_error = "not connected yet"
        # The ipkeeper version the peer's last handshake named ("unknown": it named none).
        self.peer_software: str | None = None
        self._session: wire.Session | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._serving: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        """`local->remote`, for logs and status."""
        return f"{self.local}->{self.remote}"

    @property
    def connected(self) -> bool:
        """True while a connection is established on this path."""
        return self._writer is not None and self._session is not None

    def _notify(self) -> None:
        try:
            self.on_connection(self)
        except Exception:
            # The channel's own state is right; a listener's failure must not change it.
            log.exception("listener of channel %s failed", self.name)

    # -- sending -------------------------------------------------------------

    def send(self, kind: str, data: dict[str, Any] | None = None) -> bool:
        """Queue one frame on this channel; False when it is not connected."""
        if self._writer is None or self._session is None or self._writer.is_closing():
            return False
        try:
            self._writer.write(wire.seal(self.key, self._session.frame(kind, data)))
        except (OSError, RuntimeError):
            return False
        return True

    # -- establishing ----------------------------------------------------------

    async def dial_forever(self, stop: asyncio.Event) -> None:
        """Connect, serve, and reconnect after any failure, until `stop`."""
        while not stop.is_set():
            timeout = self.connect_timeout()
            try:
                await self._dial_once(timeout)
            except (OSError, TimeoutError, asyncio.IncompleteReadError, wire.FrameError) as exc:
                self.last_error = f"connect: {exc or type(exc).__name__}"
            except Exception as exc:  # never let the dialing loop die
                log.exception("channel %s: connection failed", self.name)
                self.last_error = f"connection failed: {exc}"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), min(timeout, 0.25))

    async def _dial_once(self, timeout: float) -> None:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.remote, self.port, local_addr=(self.local, 0)), timeout
        )
        try:
            tune_socket(writer)
            nonce = wire.new_nonce()
            writer.write(wire.seal(self.key, wire.hello(self.me, self.peer, nonce)))
            reply = await asyncio.wait_for(wire.read_frame(reader, self.key), timeout)
            data = reply.get("data", {})
            if (
                reply.get("type") != "hello"
                or reply.get("from") != self.peer
                or data.get("echo") != nonce
            ):
                raise wire.FrameError("handshake answered by the wrong peer or with a stale nonce")
            session = wire.Session(
                self.me, self.peer, wire.session_id(nonce, str(data.get("nonce")))
            )
            session.extra["software"] = str(data.get("software") or "unknown")
            writer.write(wire.seal(self.key, session.frame("ack")))
            await writer.drain()
        except BaseException:
            writer.close()
            raise
        await self.serve(reader, writer, session)

    async def serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, session: wire.Session
    ) -> None:
        """Carry this connection until it breaks; it replaces any older one."""
        older = self._serving
        me = asyncio.current_task()
        self._session, self._writer = session, writer
        self.peer_software = session.extra.get("software", self.peer_software)
        self._serving = me
        if older is not None and older is not me and not older.done():
            older.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await older
        self.connected_since = time.time()
        self.last_error = ""
        log.debug("channel %s to %s connected", self.name, self.peer)
        self._notify()
        reason = "connection closed"
        try:
            reason = await self._receive(reader, session)
        except asyncio.CancelledError:
            reason = "replaced by a newer connection"
            raise
        finally:
            writer.close()
            if self._writer is writer:
                self._writer = None
                self._session = None
                self.connected_since = None
                self.last_error = reason
                log.debug("channel %s to %s closed: %s", self.name, self.peer, reason)
                self._notify()

    async def _receive(self, reader: asyncio.StreamReader, session: wire.Session) -> str:
        """Read frames until the connection breaks or misbehaves."""
        while True:
            try:
                body = session.accept(await wire.read_frame(reader, self.key))
            except (asyncio.IncompleteReadError, ConnectionError, OSError):
                return "connection lost"
            except wire.FrameError as exc:
                self.on_drop(self.name, str(exc))
                if "oversized" in str(exc) or "magic" in str(exc):
                    return f"dropped the connection: {exc}"
                continue
            self.on_frame(self, body)

    def close(self) -> None:
        """Drop the current connection (a dialing channel reconnects by itself)."""
        if self._writer is not None:
            self._writer.close()


async def accept_handshake(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    me: str,
    key: KeyRing,
    expected_peer: str,
    timeout: float,
) -> wire.Session:
    """The listening side of the handshake; raises FrameError for anything not right."""
    first = await asyncio.wait_for(wire.read_frame(reader, key), timeout)
    if first.get("type") != "hello" or first.get("to") != me:
        raise wire.FrameError(f"expected a hello to {me}, got {first.get('type')!r}")
    if first.get("from") != expected_peer:
        raise wire.FrameError(
            f"hello from {first.get('from')!r} on a path that belongs to {expected_peer}"
        )
    theirs = str(first.get("data", {}).get("nonce"))
    ours = wire.new_nonce()
    writer.write(wire.seal(key, wire.hello(me, expected_peer, ours, echo=theirs)))
    await writer.drain()
    session = wire.Session(me, expected_peer, wire.session_id(theirs, ours))
    session.extra["software"] = str(first.get("data", {}).get("software") or "unknown")
    ack = session.accept(await asyncio.wait_for(wire.read_frame(reader, key), timeout))
    if ack.get("type") != "ack":
        raise wire.FrameError("handshake not acknowledged")
    return session
