"""Heartbeats on a thread of their own (R25): nothing the daemon does can delay them.

Every HBEAT_INTERVAL this thread sends one authenticated UDP datagram on
every comm path (wire.seal_beat_fields) and reads whatever has arrived, with its
own selector and sockets; it touches no asyncio loop, no database and no
lock the rest of the daemon holds for long. Where allowed (HBEAT_REALTIME=1,
the default) it runs at real-time priority (SCHED_RR) with the process's
memory locked, as keepalived and corosync do; when that is not permitted it
says so once and runs at normal priority.

What it judges (cluster/liveness.py, on an "awake" clock that stops while
this thread was not running, so a paused process never blames its peers
for its own pause):
- a path is up while its heartbeats keep arriving;
- a peer is alive while any path to it is up and its heartbeats do not say
  that its main loop is stuck.

It also watches this daemon's own main loop: the loop calls `loop_alive()`
every turn of a ticker; if it has not for LOOP_STALL_LIMIT seconds the loop
is stuck (not merely slow), and the heartbeats say so, so that peers stop
counting this server as alive and may act, although its heartbeat thread
still runs. A SIGSTOPped or dead daemon sends nothing at all and is judged
dead after the usual silence.

Changes are handed to `notify` (from this thread: the receiver must pass
them to its own loop, e.g. with call_soon_threadsafe).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import selectors
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from ipkeeper.cluster import wire
from ipkeeper.cluster.keys import KeyRing
from ipkeeper.cluster.liveness import PathLiveness
from ipkeeper.threads import name_this_thread

log = logging.getLogger("ipkeeper.heartbeat")

IP_FREEBIND = 15
SO_TIMESTAMPNS = 35  # Linux; also the type of the SCM_TIMESTAMPNS control message
RT_PRIORITY = 10
MCL_CURRENT, MCL_FUTURE, MCL_ONFAULT = 1, 2, 4
TOS_CS6 = 0xC0  # network control, as VRRP and corosync mark their packets


@dataclass(frozen=True)
class Timing:
    """The heartbeat settings in force (read from the tunables at every turn)."""

    interval: float
    misses: int
    stall_limit: float
    realtime: bool


@dataclass(frozen=True)
class PathSpec:
    """A comm path: this server's address, the peer's address, and the peer."""

    peer: str
    local: str
    remote: str


@dataclass(frozen=True)
class PathReport:
    """One path as status shows it."""

    peer: str
    local: str
    remote: str
    up: bool
    since: float  # wall-clock time of the last change
    reason: str
    rtt: float | None
    loss: float
    limit: float  # the silence that would take it down now


@dataclass(frozen=True)
class Change:
    """Something the main loop must know: a path or a peer changed, or a peer restarted."""

    kind: str  # "path", "peer", "restart"
    peer: str
    up: bool
    reason: str = ""
    path: PathSpec | None = None


_STAMP = struct.Struct("qq")  # struct timespec of SCM_TIMESTAMPNS
_STAMP_SPACE = socket.CMSG_SPACE(_STAMP.size)


@dataclass(frozen=True)
class _Window:
    """How to date what one wake-up reads: the monotonic time of the wake-up, the
    offset of the wall clock (the kernel stamps datagrams with it), and how long
    this thread was running since it last read."""

    now: float
    wall_offset: float
    running: float

    def arrival(self, ancillary: list[tuple[int, int, bytes]]) -> float:
        """The monotonic time a datagram arrived (its kernel stamp), never before the
        thread last read (so a pause of this process never ages it)."""
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                seconds, nanos = _STAMP.unpack(payload[: _STAMP.size])
                stamped = seconds + nanos / 1e9 - self.wall_offset
                return min(max(stamped, self.now - self.running), self.now)
        return self.now


@dataclass
class _Path:
    spec: PathSpec
    sock: socket.socket
    judge: PathLiveness = field(default_factory=PathLiveness)
    seq: int = 0  # the last heartbeat sent on this path
    sent: deque[tuple[int, float]] = field(default_factory=lambda: deque(maxlen=2048))
    peer_boot: int = 0
    peer_seq: int = 0  # the last sequence number received from the peer
    peer_seq_at: float = 0.0  # when (monotonic)
    rtt: float | None = None
    since_wall: float = field(default_factory=time.time)
    route: bytes = b""  # what every heartbeat we send on this path carries
    expected: bytes = b""  # ... and what the peer's must carry
    destination: tuple[str, int] = ("", 0)


@dataclass
class _Peer:
    name: str
    paths: list[_Path] = field(default_factory=list)
    boot: int = 0
    alive: bool = False
    stuck: bool = False
    ready: bool = False


Notify = Callable[[list[Change]], None]


class Heartbeat:
    """The heartbeat thread for every path of this server; see the module docstring."""

    def __init__(
        self,
        me: str,
        paths: list[PathSpec],
        port: int,
        keys: KeyRing,
        timing: Callable[[], Timing],
        notify: Notify,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.me = me
        self.port = port
        self.keys = wire.BeatKeys(keys)
        self.timing = timing
        self.notify = notify
        self.clock = clock
        self.boot = int.from_bytes(os.urandom(8), "big") or 1
        self.ready = False  # set by the daemon once reconciled; told to peers
        self.dropped = 0
        self.on_drop: Callable[[str, str], None] = lambda where, reason: None
        self._lock = threading.Lock()
        self._paths: list[_Path] = []
        self._by_address: dict[tuple[str, str], _Path] = {}
        self._peers: dict[str, _Peer] = {}
        self._specs = paths
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._loop_tick = clock()
        self._paused = 0.0
        self._stuck = False
        self._misses = 4
        self._locals: dict[int, str] = {}
        self._sockets_changed = False
        self._closing: list[socket.socket] = []
        self._late_minute, self._late_now, self.late_before = 0, 0.0, 0.0
        self.realtime_note = "not started"

    # -- the daemon's side -------------------------------------------------------

    def start(self) -> None:
        """Open the sockets and start the thread."""
        for spec in self._specs:
            self._add(spec)
        self._loop_tick = self.clock()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
        self._thread.start()

    def _add(self, spec: PathSpec) -> None:
        sock = next((p.sock for p in self._paths if p.spec.local == spec.local), None)
        path = _Path(
            spec,
            sock or self._socket(spec.local),
            route=wire.beat_route(self.me, spec.peer, spec.local, spec.remote),
            expected=wire.beat_route(spec.peer, self.me, spec.remote, spec.local),
            destination=(spec.remote, self.port),
        )
        # Copies, not edits: the thread may be iterating over the lists in use.
        with self._lock:
            self._paths = [*self._paths, path]
            self._by_address = {**self._by_address, (spec.local, spec.remote): path}
            peer = self._peers.get(spec.peer) or _Peer(spec.peer)
            peer.paths = [*peer.paths, path]
            self._peers = {**self._peers, spec.peer: peer}
            self._sockets_changed = True

    def add_path(self, spec: PathSpec) -> None:
        """Start heartbeats on a new comm path (SIGHUP); it comes up when the peer answers."""
        self._add(spec)
        self._wake()

    def remove_path(self, local: str, remote: str) -> None:
        """Stop heartbeats on a comm path (SIGHUP); a peer stays alive while another is up."""
        with self._lock:
            path = self._by_address.get((local, remote))
            if path is None:
                return
            self._paths = [p for p in self._paths if p is not path]
            self._by_address = {k: v for k, v in self._by_address.items() if v is not path}
            peer = self._peers[path.spec.peer]
            peer.paths = [p for p in peer.paths if p is not path]
            if not any(p.sock is path.sock for p in self._paths):
                self._closing.append(path.sock)  # closed by the thread, which reads it
            self._sockets_changed = True
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def stop(self) -> None:
        """Stop the thread and close the sockets."""
        self._stop.set()
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout=2)
        for sock in [*{id(p.sock): p.sock for p in self._paths}.values(), *self._closing]:
            sock.close()
        self._wake_r.close()
        self._wake_w.close()

    def loop_alive(self) -> None:
        """The main loop has turned (called from it, often)."""
        self._loop_tick = self.clock()

    def snapshot(self) -> list[PathReport]:
        """Every path's state now."""
        misses = self.timing().misses
        with self._lock:
            return [
                PathReport(
                    p.spec.peer,
                    p.spec.local,
                    p.spec.remote,
                    p.judge.up,
                    p.since_wall,
                    p.judge.reason,
                    p.rtt,
                    p.judge.loss(),
                    p.judge.silence_limit(misses),
                )
                for p in self._paths
            ]

    def peer(self, name: str) -> tuple[bool, bool, bool]:
        """(alive, stuck, ready) of a peer, as the heartbeats say."""
        with self._lock:
            found = self._peers.get(name)
            return (found.alive, found.stuck, found.ready) if found else (False, False, False)

    @property
    def stuck(self) -> bool:
        """True while this daemon's own main loop is judged stuck."""
        return self._stuck

    # -- the thread ----------------------------------------------------------------

    def _socket(self, local: str) -> socket.socket:
        family = socket.AF_INET6 if ":" in local else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_PRIORITY, 6)
            if family == socket.AF_INET:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, TOS_CS6)
                sock.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
            else:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, TOS_CS6)
        sock.bind((local, self.port))
        return sock

    def _realtime(self, wanted: bool) -> None:
        if not wanted:
            self.realtime_note = "off (HBEAT_REALTIME=0)"
            return
        notes = []
        try:
            os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(RT_PRIORITY))
            notes.append(f"SCHED_RR priority {RT_PRIORITY}")
        except OSError as exc:
            notes.append(f"real-time priority not permitted ({exc.strerror})")
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) == 0:
            notes.append("memory locked")
        else:
            notes.append(f"memory not locked ({os.strerror(ctypes.get_errno())})")
        self.realtime_note = ", ".join(notes)
        level = logging.INFO if "not" not in self.realtime_note else logging.WARNING
        log.log(level, "heartbeat thread: %s", self.realtime_note)

    def _run(self) -> None:
        name_this_thread("ipk-heartbeat")
        timing = self.timing()
        self._realtime(timing.realtime)
        self._misses = timing.misses
        # The thread wakes once per interval (or at a path's deadline) and reads
        # whatever arrived meanwhile, each datagram at the time the kernel
        # stamped it: a wake-up per datagram would cost more than the rest.
        selector = selectors.DefaultSelector()
        selector.register(self._wake_r, selectors.EVENT_READ)
        sockets = self._sockets()
        next_send = self.clock()
        timing_read = 0.0
        last_wake, excess = self.clock(), 0.0
        while not self._stop.is_set():
            if self._sockets_changed:
                sockets = self._sockets()
            now = self.clock()
            if now - timing_read >= 1.0:  # the tunables and key files: once a second
                timing, timing_read = self.timing(), now
                self._misses = timing.misses
                self.keys.update(now)
            changes: list[Change] = []
            # Nothing that arrived can be older, on the awake clock, than the time
            # this thread was running since it last looked.
            window = _Window(now, time.time() - now, max((now - last_wake) - excess, 0.0))
            for sock in sockets:
                self._receive(sock, changes, window)
            last_wake = now
            if now >= next_send:
                self._check_loop(timing, now)
                self._send_all(timing, now)
                next_send = max(next_send + timing.interval, now + timing.interval / 4)
            self._judge(timing, changes)
            if changes:
                self._tell(changes)
            wake_at = min(next_send, self._next_deadline(timing))
            timeout = max(0.001, wake_at - self.clock())
            expected = self.clock() + timeout
            if selector.select(timeout):  # only stop() or a path change wakes it early
                with contextlib.suppress(OSError):
                    self._wake_r.recv(64)
            # Time beyond what we asked to sleep is time this thread did not run.
            overslept = self.clock() - expected
            excess = overslept if overslept > max(2 * timing.interval, 0.05) else 0.0
            self._paused += excess
            self._note_lateness(overslept)
        selector.close()

    def _sockets(self) -> list[socket.socket]:
        """The sockets of the paths in use (on the thread: after a path was added or
        removed, closing those no path uses any more)."""
        with self._lock:
            self._sockets_changed = False
            closing, self._closing = self._closing, []
            sockets = list({id(p.sock): p.sock for p in self._paths}.values())
        for sock in closing:
            sock.close()
        self._locals = {sock.fileno(): sock.getsockname()[0] for sock in sockets}
        for sock in sockets:
            with contextlib.suppress(OSError, AttributeError):
                sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        return sockets

    def _note_lateness(self, late: float) -> None:
        """Keep the worst wake-up delay of this minute and the last (for status)."""
        minute = int(self.clock() // 60)
        if minute != self._late_minute:
            self._late_minute, self.late_before, self._late_now = minute, self._late_now, 0.0
        self._late_now = max(self._late_now, late)

    @property
    def worst_lateness(self) -> float:
        """The longest this thread woke up late, in this minute or the last (seconds)."""
        return max(self.late_before, self._late_now)

    def _next_deadline(self, timing: Timing) -> float:
        """The monotonic time at which the first path would be judged down."""
        deadlines = [d for p in self._paths if (d := p.judge.deadline(timing.misses)) is not None]
        return min(deadlines) + self._paused if deadlines else float("inf")

    def _awake(self, now: float) -> float:
        return now - self._paused

    def _tell(self, changes: list[Change]) -> None:
        try:
            self.notify(changes)
        except Exception:  # the main loop may be closing; the thread must go on
            log.exception("heartbeat: could not pass on %d changes", len(changes))

    def _check_loop(self, timing: Timing, now: float) -> None:
        silent = now - self._loop_tick
        stuck = silent > timing.stall_limit
        if stuck != self._stuck:
            self._stuck = stuck
            if stuck:
                log.critical(
                    "main loop has not turned for %.1fs (limit %.1fs): telling peers this "
                    "server is stuck",
                    silent,
                    timing.stall_limit,
                )
            else:
                log.warning("main loop turns again: telling peers this server is back")

    def _send_all(self, timing: Timing, now: float) -> None:
        flags = (wire.FLAG_STUCK if self._stuck else 0) | (wire.FLAG_READY if self.ready else 0)
        for path in self._paths:
            path.seq += 1
            held = max(now - path.peer_seq_at, 0.0) if path.peer_seq else 0.0
            datagram = wire.seal_beat_fields(
                self.keys.sending(), path.route, flags, timing.interval, self.boot, path.seq,
                path.peer_boot, path.peer_seq, held,
            )  # fmt: skip
            path.sent.append((path.seq, now))
            try:
                path.sock.sendto(datagram, path.destination)
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.ENETUNREACH, errno.EHOSTUNREACH):
                    log.debug("heartbeat on %s: %s", path.spec.remote, exc)

    def _receive(self, sock: socket.socket, changes: list[Change], window: _Window) -> None:
        local = self._locals[sock.fileno()]
        for _ in range(1024):  # bounded: a flood cannot hold the thread
            try:
                data, ancillary, _flags, source = sock.recvmsg(
                    512, _STAMP_SPACE, socket.MSG_DONTWAIT
                )
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            path = self._by_address.get((local, source[0]))
            if path is None:
                self._drop(
                    f"{local}<-{source[0]}", "heartbeat from an address that is no comm path"
                )
                continue
            try:
                fields, route = wire.open_beat_fields(self.keys, data)
            except wire.FrameError as exc:
                self._drop(f"{local}<-{source[0]}", str(exc))
                continue
            if route != path.expected:
                sender, receiver, *_ = wire.describe_route(route)
                self._drop(
                    f"{local}<-{source[0]}",
                    f"heartbeat from {sender!r} to {receiver!r} on the path to {path.spec.peer}",
                )
                continue
            self._accept(path, fields, changes, window.arrival(ancillary))

    def _drop(self, where: str, reason: str) -> None:
        self.dropped += 1
        self.on_drop(where, reason)

    def _accept(
        self, path: _Path, fields: tuple[int, ...], changes: list[Change], arrived: float
    ) -> None:
        spec = path.spec
        flags, interval_ms, boot, seq, echo_boot, echo, held_us = fields
        interval, held = interval_ms / 1000, held_us / 1e6
        now = arrived
        # It proves the path works both ways only if it echoes one of ours sent
        # within the silence this path allows: a peer that stopped hearing us
        # (a one-way cut) stops counting as soon as it would have by silence.
        sent_at = self._sent_at(path, echo_boot, echo)
        fresh = sent_at is not None and now - sent_at <= path.judge.silence_limit(self._misses)
        if boot == path.peer_boot:
            if seq <= path.peer_seq:
                return  # a duplicate, or a replay within the run
        elif not fresh and path.judge.up:
            return  # another run's datagram while this run is heard: a replay, or unproven
        path.peer_boot, path.peer_seq, path.peer_seq_at = boot, seq, now
        if not fresh:
            return  # authentic, but it proves nothing: it does not echo a recent heartbeat
        assert sent_at is not None
        rtt = max(now - sent_at - held, 0.0)
        with self._lock:
            path.rtt = rtt if path.rtt is None else 0.8 * path.rtt + 0.2 * rtt
            peer = self._peers[spec.peer]
            if peer.boot != boot:
                if peer.boot and peer.alive:
                    changes.append(Change("restart", spec.peer, True, "a new run of its daemon"))
                for other in peer.paths:
                    other.judge.restart()
                peer.boot = boot
            peer.ready = bool(flags & wire.FLAG_READY)
            peer.stuck = bool(flags & wire.FLAG_STUCK)
            if path.judge.heard(self._awake(self.clock()) - (self.clock() - now), seq, interval):
                path.since_wall = time.time()
                changes.append(Change("path", spec.peer, True, path=spec))

    def _sent_at(self, path: _Path, boot: int, seq: int) -> float | None:
        if boot != self.boot or not path.sent or seq <= 0:
            return None
        index = seq - path.sent[0][0]
        if 0 <= index < len(path.sent) and path.sent[index][0] == seq:
            return path.sent[index][1]
        return None

    def _judge(self, timing: Timing, changes: list[Change]) -> None:
        awake = self._awake(self.clock())
        with self._lock:
            for path in self._paths:
                if path.judge.judge(awake, timing.misses):
                    path.since_wall = time.time()
                    changes.append(
                        Change("path", path.spec.peer, False, path.judge.reason, path.spec)
                    )
            for peer in self._peers.values():
                paths = peer.paths
                alive = any(p.judge.up for p in paths) and not peer.stuck
                if alive == peer.alive:
                    continue
                peer.alive = alive
                if alive:
                    reason = "heartbeats arrive"
                elif peer.stuck and any(p.judge.up for p in paths):
                    reason = "its main loop is stuck (its heartbeats say so)"
                else:
                    reason = "every comm path is down"
                changes.append(Change("peer", peer.name, alive, reason))
