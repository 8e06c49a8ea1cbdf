"""One communication path (R25): a TCP connection to a peer carrying heartbeats and messages.

The server whose name sorts first dials, the other accepts; either way the
connection starts with the handshake of wire.py. Heartbeats go both ways
every HBEAT_INTERVAL; the path is down once nothing at all has arrived for
HBEAT_MISSES intervals (on the monotonic clock), or when the connection
breaks. A dialing path tries again by itself. Heartbeats run in their own
task and never wait behind a resource action.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from ipkeeper.cluster import wire
from ipkeeper.cluster.keys import KeyRing

log = logging.getLogger("ipkeeper.commpath")

Timing = Callable[[], tuple[float, int]]  # (heartbeat interval, misses)
FrameHandler = Callable[["CommPath", dict[str, Any]], None]
Notify = Callable[["CommPath"], None]
DropLog = Callable[[str, str], None]


class PathState(StrEnum):
    """Whether a path carries heartbeats now."""

    DOWN = "down"
    UP = "up"


def tune_socket(writer: asyncio.StreamWriter) -> None:
    """No Nagle delay; give up on unacknowledged data quickly."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 2000)


class CommPath:
    """A path to `peer` from `local` to `remote`."""

    def __init__(
        self,
        me: str,
        peer: str,
        local: str,
        remote: str,
        port: int,
        key: KeyRing,
        timing: Timing,
        on_frame: FrameHandler,
        on_change: Notify,
        on_drop: DropLog,
        on_reconnect: Notify = lambda path: None,
    ) -> None:
        self.me, self.peer, self.local, self.remote, self.port = me, peer, local, remote, port
        self.key = key
        self.timing = timing
        self.on_frame = on_frame
        self.on_change = on_change
        self.on_drop = on_drop
        self.on_reconnect = on_reconnect
        self.dialer = me < peer
        self.state = PathState.DOWN
        self.since = time.time()
        self.rtt: float | None = None
        self.last_rx = 0.0  # monotonic time of the last frame received
        self.down_reason = "not connected yet"
        self._session: wire.Session | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._serving: asyncio.Task[None] | None = None
        self._peer_t: tuple[float, float] | None = None  # (peer's t, when we got it)

    @property
    def name(self) -> str:
        """`local->remote`, for logs and status."""
        return f"{self.local}->{self.remote}"

    def describe(self) -> dict[str, Any]:
        """The path as status shows it."""
        return {
            "peer": self.peer,
            "local": self.local,
            "remote": self.remote,
            "state": self.state.value,
            "since": self.since,
            "rtt_ms": round(self.rtt * 1000, 3)
            if self.rtt is not None and self.state is PathState.UP
            else None,
            "reason": None if self.state is PathState.UP else self.down_reason,
        }

    def _set(self, state: PathState, reason: str = "") -> None:
        if state is self.state:
            return
        self.state = state
        self.since = time.time()
        self.down_reason = reason
        log.info(
            "path %s to %s %s%s", self.name, self.peer, state.value, f": {reason}" if reason else ""
        )
        self._notify(self.on_change)

    def _notify(self, listener: Notify) -> None:
        try:
            listener(self)
        except Exception:
            # The path's own state is right; a listener's failure must not change it.
            log.exception("listener of path %s failed", self.name)

    # -- sending -------------------------------------------------------------

    def send(self, kind: str, data: dict[str, Any] | None = None) -> bool:
        """Queue one frame on this path; False when the path is down."""
        if self.state is not PathState.UP or self._writer is None or self._session is None:
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
            interval, misses = self.timing()
            try:
                await self._dial_once(timeout=max(interval * misses, 0.2))
            except (OSError, TimeoutError, asyncio.IncompleteReadError, wire.FrameError) as exc:
                self.down_reason = f"connect: {exc or type(exc).__name__}"
            except Exception as exc:  # never let the dialing loop die
                log.exception("path %s: connection failed", self.name)
                self.down_reason = f"connection failed: {exc}"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)

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
            writer.write(wire.seal(self.key, session.frame("ack")))
            await writer.drain()
        except BaseException:
            writer.close()
            raise
        await self.serve(reader, writer, session)

    async def serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, session: wire.Session
    ) -> None:
        """Carry this connection until it breaks or goes quiet; replaces any older one."""
        older = self._serving
        me = asyncio.current_task()
        # Take the path over before stopping the older connection, so that its
        # ending does not mark the path (and maybe the peer) down for an instant.
        # (A dialing path serves every connection from the same task.)
        self._session, self._writer = session, writer
        self._serving = me
        replaced = older is not None and older is not me and not older.done()
        if replaced:
            assert older is not None
            older.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await older
        self._peer_t = None
        self.last_rx = time.monotonic()
        self._set(PathState.UP)
        if replaced:
            # The path never went down, but what was in flight on the old
            # connection is lost: let the node send it again.
            self._notify(self.on_reconnect)
        beats = asyncio.create_task(self._heartbeats(), name=f"hb {self.name}")
        reason = "connection closed"
        try:
            reason = await self._receive(reader)
        except asyncio.CancelledError:
            reason = "replaced by a newer connection"
            raise
        finally:
            beats.cancel()
            writer.close()
            if self._writer is writer:
                self._writer = None
                self._session = None
                self._set(PathState.DOWN, reason)

    async def _heartbeats(self) -> None:
        while True:
            interval, _ = self.timing()
            data: dict[str, Any] = {"t": time.monotonic()}
            if self._peer_t is not None:
                data["echo"] = self._peer_t[0]
                data["held"] = time.monotonic() - self._peer_t[1]
            self.send("hb", data)
            await asyncio.sleep(interval)

    async def _receive(self, reader: asyncio.StreamReader) -> str:
        """Read frames until the connection breaks or the watchdog finds it quiet."""
        session = self._session
        assert session is not None
        watchdog = asyncio.create_task(self._watch(), name=f"watchdog {self.name}")
        read: asyncio.Future[dict[str, Any]] | None = None
        try:
            while True:
                read = asyncio.ensure_future(wire.read_frame(reader, self.key))
                done, _ = await asyncio.wait([read, watchdog], return_when=asyncio.FIRST_COMPLETED)
                if watchdog in done:
                    read.cancel()
                    return watchdog.result()
                try:
                    body = session.accept(read.result())
                except (asyncio.IncompleteReadError, ConnectionError, OSError):
                    return "connection lost"
                except wire.FrameError as exc:
                    self.on_drop(self.name, str(exc))
                    if "oversized" in str(exc) or "magic" in str(exc):
                        return f"dropped the connection: {exc}"
                    continue
                self._received(body)
        finally:
            watchdog.cancel()
            if read is not None:
                read.cancel()

    async def _watch(self) -> str:
        """Return once nothing has arrived for HBEAT_MISSES intervals.

        Before concluding, it lets the event loop run twice more, so that frames
        that arrived while this process was not scheduled (a busy machine) are
        read first and do not count as silence.
        """
        while True:
            interval, misses = self.timing()
            quiet = interval * misses
            await asyncio.sleep(max(interval / 2, quiet - (time.monotonic() - self.last_rx)))
            if time.monotonic() - self.last_rx < quiet:
                continue
            for _ in range(2):
                await asyncio.sleep(0)
            if time.monotonic() - self.last_rx >= quiet:
                return f"no frame for {quiet:.2f}s"

    def _received(self, body: dict[str, Any]) -> None:
        self.last_rx = time.monotonic()
        if body.get("type") == "hb":
            data = body.get("data", {})
            now = time.monotonic()
            self._peer_t = (float(data.get("t", 0.0)), now)
            if "echo" in data:
                self.rtt = max(0.0, now - float(data["echo"]) - float(data.get("held", 0.0)))
            return
        self.on_frame(self, body)

    def close(self) -> None:
        """Drop the current connection (a dialing path reconnects by itself)."""
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
    ack = session.accept(await asyncio.wait_for(wire.read_frame(reader, key), timeout))
    if ack.get("type") != "ack":
        raise wire.FrameError("handshake not acknowledged")
    return session
