"""A client that asks, for many VIPs at once, which server answers for each (ARP).

For a thousand VIPs a UDP echo per VIP would fill the client's neighbour
table (shared by every namespace of the machine, 1,024 entries by default);
an ARP request sent on a packet socket needs none: the server whose kernel
has the address configured answers with its MAC. `Sweeper` runs in the
client's namespace on a thread of its own, asks every VIP in turn
(`rate` requests a second at most, each VIP again every `period`), and
records, for each VIP, every change of the MAC that answers for it and when
each MAC last answered. Bounded: it stops after `limit` seconds whatever
happens.
"""

from __future__ import annotations

import ipaddress
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

from ipkeeper.lab import netns as ns
from ipkeeper.lab.topology import Node

ETH_P_ARP = 0x0806


@dataclass
class Sweeper:
    """Asks `client`'s LAN who has each of `vips`; see the module docstring."""

    client: Node
    vips: list[str]
    source: str  # the client's address in the VIPs' subnet
    period: float = 0.05
    rate: float = 20_000.0
    limit: float = 120.0
    changes: dict[str, list[tuple[float, str]]] = field(default_factory=dict)  # (when, new MAC)
    last: dict[str, dict[str, float]] = field(default_factory=dict)  # VIP -> MAC -> last answer
    sent: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Sweeper:
        """Begin asking."""
        sock = ns.socket_in(
            self.client.namespace, socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP)
        )
        sock.bind(("eth0", ETH_P_ARP))
        self._thread = threading.Thread(target=self._run, args=(sock,), name="arp", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop asking (waits for the thread)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _frames(self, own_mac: bytes) -> dict[bytes, bytes]:
        src = ipaddress.IPv4Address(self.source).packed
        frames = {}
        for vip in self.vips:
            target = ipaddress.IPv4Address(vip).packed
            eth = b"\xff" * 6 + own_mac + struct.pack("!H", ETH_P_ARP)
            arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + own_mac + src + b"\0" * 6 + target
            frames[target] = eth + arp
        return frames

    def _run(self, sock: socket.socket) -> None:
        with sock:
            own_mac = sock.getsockname()[4]
            frames = self._frames(own_mac)
            names = {ipaddress.IPv4Address(v).packed: v for v in self.vips}
            order = list(frames)
            deadline = time.monotonic() + self.limit
            # A full round every `period` at most, and never above `rate`.
            step = max(1.0 / self.rate, self.period / len(order))
            position = 0
            next_send = time.monotonic()
            while not self._stop.is_set() and time.monotonic() < deadline:
                now = time.monotonic()
                burst = 0
                while now >= next_send and burst < 256:
                    sock.send(frames[order[position]])
                    self.sent += 1
                    position = (position + 1) % len(order)
                    next_send += step
                    burst += 1
                wait = max(0.0, min(next_send - time.monotonic(), 0.01))
                ready, _, _ = select.select([sock], [], [], wait)
                if ready:
                    self._read(sock, names)

    def _read(self, sock: socket.socket, names: dict[bytes, str]) -> None:
        for _ in range(512):
            try:
                data = sock.recv(128, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            if len(data) < 42 or data[12:14] != b"\x08\x06" or data[20:22] != b"\x00\x02":
                continue
            vip = names.get(data[28:32])
            if vip is None:
                continue
            mac = ":".join(f"{b:02x}" for b in data[22:28])
            now = time.monotonic()
            with self._lock:
                seen = self.changes.setdefault(vip, [])
                if not seen or seen[-1][1] != mac:
                    seen.append((now, mac))
                self.last.setdefault(vip, {})[mac] = now

    # -- what was seen ---------------------------------------------------------------

    def first_from(self, mac: str, after: float) -> dict[str, float]:
        """For each VIP, when `mac` started answering for it after `after` (`after` itself
        when it was answering already and went on)."""
        found = {}
        with self._lock:
            for vip, seen in self.changes.items():
                started = [t for t, m in seen if m == mac and t >= after]
                if started:
                    found[vip] = min(started)
                elif self.last[vip].get(mac, 0.0) >= after:
                    found[vip] = after
        return found

    def answered_by(self, mac: str, after: float) -> set[str]:
        """The VIPs `mac` answered for after `after`."""
        with self._lock:
            return {v for v, macs in self.last.items() if macs.get(mac, 0.0) > after}
