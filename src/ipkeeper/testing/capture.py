"""Hearing announcements as a client does: gratuitous ARPs and unsolicited neighbour
advertisements arriving on a lab node's interface, each with when it arrived.

A raw packet socket in the node's namespace, read on a thread of its own,
bounded: it stops after `limit` seconds whatever happens.
"""

from __future__ import annotations

import ipaddress
import select
import socket
import threading
import time
from dataclasses import dataclass, field

from ipkeeper.lab import netns as ns
from ipkeeper.lab.topology import Node

ETH_P_ALL = 0x0003
ND_NEIGHBOR_ADVERT = 136
NA_SOLICITED = 0x40  # an answer to a solicitation, not an announcement


def announced(frame: bytes) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a frame announces: a gratuitous ARP request (sender address = target
    address) or an unsolicited neighbour advertisement (its target; a solicited one
    answers a question, it announces nothing), else None."""
    arp = frame[12:14] == b"\x08\x06" and len(frame) >= 42 and frame[20:22] == b"\x00\x01"
    if arp and frame[28:32] == frame[38:42]:
        return ipaddress.IPv4Address(frame[28:32])
    icmp6 = frame[12:14] == b"\x86\xdd" and len(frame) >= 78 and frame[20] == 58
    if icmp6 and frame[54] == ND_NEIGHBOR_ADVERT and not frame[58] & NA_SOLICITED:
        return ipaddress.IPv6Address(frame[62:78])
    return None


@dataclass
class Announcements:
    """What `node` hears announced on `ifname`; see the module docstring."""

    node: Node
    ifname: str = "eth0"
    limit: float = 30.0
    heard: list[tuple[float, str, str]] = field(default_factory=list)  # (when, address, MAC)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Announcements:
        sock = ns.socket_in(
            self.node.namespace, socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL)
        )
        sock.bind((self.ifname, ETH_P_ALL))
        self._thread = threading.Thread(target=self._run, args=(sock,), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self, sock: socket.socket) -> None:
        deadline = time.monotonic() + self.limit
        with sock:
            while not self._stop.is_set() and (left := deadline - time.monotonic()) > 0:
                ready, _, _ = select.select([sock], [], [], min(left, 0.05))
                if not ready:
                    continue
                frame = sock.recv(2048)
                address = announced(frame)
                if address is not None:
                    mac = ":".join(f"{b:02x}" for b in frame[6:12])
                    with self._lock:
                        self.heard.append((time.monotonic(), str(address), mac))

    def times(self, address: str) -> list[float]:
        """When `address` was announced, in order."""
        with self._lock:
            return [t for t, a, _ in self.heard if a == address]

    def bursts(self, address: str, gap: float) -> list[list[float]]:
        """The announcements of `address` grouped into bursts: a new burst starts after
        a silence longer than `gap`."""
        groups: list[list[float]] = []
        for t in self.times(address):
            if groups and t - groups[-1][-1] <= gap:
                groups[-1].append(t)
            else:
                groups.append([t])
        return groups
