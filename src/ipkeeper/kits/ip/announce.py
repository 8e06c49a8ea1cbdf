"""Announcing VIPs (R7): gratuitous ARPs and unsolicited neighbour advertisements,
in two bursts, paced, never a storm.

After a bring-up each address is announced `IP_GARP_COUNT` times,
`IP_GARP_INTERVAL` apart, and `IP_GARP_REPEAT_DELAY` after the first
announcement `IP_GARP_COUNT` times again (0: no second burst). This is
keepalived's `garp_master_repeat` and `garp_master_delay` (5 s): a switch
or router that missed the first burst (a port still coming up, a frame lost,
a neighbour cache too busy to take the update) learns from the second. The
first announcement leaves at once, from the bring-up itself (it is what moves
the clients); the others come from one thread per kit (`ipk-announce`), on
packet sockets the bring-up opened, so they are in the server's network
namespace whichever thread sends.

Never a storm:
- an address has one schedule at most: a bring-up of an address still being
  announced replaces its schedule, it does not add one;
- a take-down cancels the address's schedule before the address goes, and
  waits for a frame of it being sent, so an address that left this server is
  never announced from here afterwards; nor is one no longer configured here;
- the repeats of one interface are paced to `REPEAT_RATE` frames a second
  (`REPEAT_BURST` at once at most): the repeats of a thousand VIPs spread over
  a second instead of leaving together. A repeat sent late moves the rest of
  its address's schedule along, so its spacing is kept.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable

from ipkeeper.config.tunables import Tunables
from ipkeeper.kits.ip import packets
from ipkeeper.kits.ip.params import IPAddress
from ipkeeper.threads import name_this_thread

log = logging.getLogger("ipkeeper.ipkit")

REPEAT_RATE = 1000.0  # repeat frames per second and interface
REPEAT_BURST = 100  # repeat frames one interface may send at once
Key = tuple[str, IPAddress]  # (interface, address)
StillHeld = Callable[[str, IPAddress], bool]
Clock = Callable[[], float]


class Schedule:
    """When each address is announced again, and which repeats may leave now.

    Pure bookkeeping: no I/O, the time is passed in (monotonic seconds).
    """

    def __init__(self, rate: float = REPEAT_RATE, burst: int = REPEAT_BURST) -> None:
        self.rate = rate
        self.burst = burst
        self._plans: dict[Key, list[float]] = {}
        self._tokens: dict[str, tuple[float, float]] = {}  # interface -> (tokens, when)

    def add(self, key: Key, now: float, count: int, interval: float, repeat_delay: float) -> None:
        """`key` was announced at `now`: plan the rest of its first burst and its second
        burst (none when `repeat_delay` is 0), replacing any plan it had."""
        times = [now + k * interval for k in range(1, count)]
        if repeat_delay > 0:
            times += [now + repeat_delay + k * interval for k in range(count)]
        if times:
            self._plans[key] = sorted(times)
        else:
            self._plans.pop(key, None)

    def drop(self, keys: Iterable[Key]) -> None:
        """Forget these addresses' plans (they are being taken down)."""
        for key in keys:
            self._plans.pop(key, None)

    def planned(self, key: Key) -> list[float]:
        """The times `key` is still to be announced at."""
        return list(self._plans.get(key, ()))

    def pending(self) -> set[Key]:
        """Every address with announcements still to come."""
        return set(self._plans)

    def _tokens_at(self, ifname: str, now: float) -> float:
        tokens, since = self._tokens.get(ifname, (float(self.burst), now))
        return min(float(self.burst), tokens + max(0.0, now - since) * self.rate)

    def due(self, now: float) -> tuple[list[Key], float | None]:
        """The repeats to send now, oldest first and within each interface's pace, and
        the time anything may next be sent (None: nothing is planned)."""
        ready: dict[str, list[tuple[float, Key]]] = {}
        for key, times in self._plans.items():
            if times[0] <= now:
                ready.setdefault(key[0], []).append((times[0], key))
        sent: list[Key] = []
        held_back: set[Key] = set()
        for ifname, waiting in ready.items():
            waiting.sort()
            tokens = self._tokens_at(ifname, now)
            allowed = min(int(tokens + 1e-9), len(waiting))
            held_back.update(key for _, key in waiting[allowed:])
            for _, key in waiting[:allowed]:
                times = self._plans[key]
                late = now - times.pop(0)
                if times:
                    self._plans[key] = [t + late for t in times]
                else:
                    del self._plans[key]
                sent.append(key)
            self._tokens[ifname] = (tokens - allowed, now)
        upcoming = [times[0] for key, times in self._plans.items() if key not in held_back]
        if held_back:
            upcoming.append(now + 1.0 / self.rate)
        return sent, min(upcoming) if upcoming else None


class Announcer:
    """Sends a kit's announcements: the first at once, the repeats from its own thread."""

    def __init__(
        self,
        tunables: Tunables,
        still_held: StillHeld | None = None,
        make_socket: packets.SocketFactory = socket.socket,
        clock: Clock = time.monotonic,
    ) -> None:
        self.tunables = tunables
        self.still_held = still_held  # None: no copy of the host's addresses to ask
        self.make_socket = make_socket
        self.clock = clock
        # Held while a frame is sent: forget() returns only once no frame of the
        # addresses it cancels can still leave.
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._schedule = Schedule()
        self._sockets: dict[tuple[str, int], tuple[socket.socket, bytes]] = {}
        self._frames: dict[Key, bytes] = {}
        self._thread: threading.Thread | None = None
        self._closed = False
        self.sent = 0  # frames sent, first announcements included

    def announce(self, ifname: str, addresses: list[IPAddress]) -> None:
        """Announce `addresses` on `ifname` now, and plan their repeats (R7).

        Raises OSError when the first announcement cannot be sent (no such
        interface): the bring-up fails, as it should.
        """
        count = self.tunables.get("IP_GARP_COUNT")
        interval = self.tunables.get("IP_GARP_INTERVAL")
        delay = self.tunables.get("IP_GARP_REPEAT_DELAY")
        with self._lock:
            now = self.clock()
            for version in sorted({a.version for a in addresses}):
                mine = [a for a in addresses if a.version == version]
                try:
                    self._first(ifname, version, mine)
                except OSError:
                    # A socket kept from an earlier bring-up is bound to the interface as
                    # it was then (deleted and made again since): once more, on a new one.
                    self._drop_socket(ifname, version)
                    self._first(ifname, version, mine)
                for address in mine:
                    self._schedule.add((ifname, address), now, count, interval, delay)
            self._close_idle()
            if self._schedule.pending():
                self._start()
                self._wake.notify()

    def forget(self, ifname: str, addresses: Iterable[IPAddress]) -> None:
        """Cancel what is still to be sent for `addresses` on `ifname` (they are being
        taken down); returns once none of their frames can leave any more."""
        keys = [(ifname, a) for a in addresses]
        with self._lock:
            self._schedule.drop(keys)
            for key in keys:
                self._frames.pop(key, None)

    def planned(self, ifname: str, address: IPAddress) -> list[float]:
        """When `address` is still to be announced on `ifname` (monotonic times)."""
        with self._lock:
            return self._schedule.planned((ifname, address))

    def close(self) -> None:
        """Stop the thread and close the sockets; nothing more is sent."""
        with self._lock:
            self._closed = True
            self._schedule.drop(self._schedule.pending())
            self._close_idle()
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # -- inside the lock ------------------------------------------------------

    def _socket(self, ifname: str, version: int) -> tuple[socket.socket, bytes]:
        found = self._sockets.get((ifname, version))
        if found is None:
            found = packets.announcement_socket(ifname, version, self.make_socket)
            self._sockets[(ifname, version)] = found
        return found

    def _first(self, ifname: str, version: int, addresses: list[IPAddress]) -> None:
        sock, own_mac = self._socket(ifname, version)
        for address in addresses:
            frame = packets.announcement(own_mac, address)
            self._send(sock, frame)
            self._frames[(ifname, address)] = frame

    def _drop_socket(self, ifname: str, version: int) -> None:
        found = self._sockets.pop((ifname, version), None)
        if found is not None:
            threading.Thread(target=found[0].close, name="close-packet-socket", daemon=True).start()

    def _send(self, sock: socket.socket, frame: bytes) -> None:
        with contextlib.suppress(BlockingIOError):
            sock.send(frame)
            self.sent += 1

    def _close_idle(self) -> None:
        """Close the sockets no planned repeat needs (on a short-lived thread: closing
        a packet socket waits for the kernel's RCU grace period)."""
        needed = {(ifname, a.version) for ifname, a in self._schedule.pending()}
        for ifname, version in [w for w in self._sockets if w not in needed]:
            self._drop_socket(ifname, version)

    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="ipk-announce", daemon=True)
            self._thread.start()

    def _repeat(self, key: Key) -> None:
        ifname, address = key
        frame = self._frames.get(key)
        found = self._sockets.get((ifname, address.version))
        if frame is None or found is None:
            return
        if self.still_held is not None and not self.still_held(ifname, address):
            self._schedule.drop([key])
            return
        try:
            self._send(found[0], frame)
        except OSError as exc:
            log.warning(
                "announcing %s on %s again: %s; its repeats are dropped", address, ifname, exc
            )
            self._schedule.drop([key])

    def _run(self) -> None:
        name_this_thread()
        with self._lock:
            while not self._closed:
                keys, next_time = self._schedule.due(self.clock())
                for key in keys:
                    self._repeat(key)
                for key in set(self._frames) - self._schedule.pending():
                    del self._frames[key]
                self._close_idle()
                if next_time is None:
                    self._wake.wait()
                else:
                    self._wake.wait(max(0.0, next_time - self.clock()))
