"""Who holds each address, sampled every 10 ms on every lab server: the lab tests'
witness that a VIP was never on two servers (beyond the unique-check window) and
never on none for longer than a bound.

One netlink socket per server namespace, opened inside it and dumped from a
thread of the test process; a sample is the set of servers that had the address
configured at that moment. The timeline keeps only the changes.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType

from ipkeeper.kits.ip import rtnl
from ipkeeper.lab import netns as ns


@dataclass
class Timeline:
    """The holders of one address over time: (monotonic time, holders) at each change."""

    changes: list[tuple[float, frozenset[str]]] = field(default_factory=list)

    def note(self, at: float, holders: frozenset[str]) -> None:
        """Record `holders` at `at` when they differ from the last sample."""
        if not self.changes or self.changes[-1][1] != holders:
            self.changes.append((at, holders))

    def _spans(self, until: float, ok: int) -> list[tuple[float, float, frozenset[str]]]:
        spans = []
        for i, (at, who) in enumerate(self.changes):
            end = self.changes[i + 1][0] if i + 1 < len(self.changes) else until
            spans.append((at, end, who))
        return [s for s in spans if len(s[2]) != ok]

    def longest(self, count: str, until: float) -> float:
        """Longest time in seconds with two or more holders (`count` "many") or with
        none (`count` "none")."""
        spans = [
            (end - at)
            for at, end, who in self._spans(until, 1)
            if (len(who) > 1 if count == "many" else not who)
        ]
        return max(spans, default=0.0)

    def story(self, since: float) -> str:
        """The changes as text, times relative to `since` (for assertion messages)."""
        return ", ".join(
            f"{at - since:+.2f}s {'+'.join(sorted(who)) or 'nobody'}" for at, who in self.changes
        )


class OwnershipSampler:
    """Samples which servers hold `addresses` every `period` seconds, on a thread,
    between `start()` (or entering the `with`) and `stop()`."""

    def __init__(
        self,
        namespaces: Mapping[str, str],
        addresses: list[str],
        period: float = 0.01,
        limit: float = 600.0,
    ) -> None:
        self.addresses = [ipaddress.ip_address(a) for a in addresses]
        self.period, self.limit = period, limit
        self.timelines = {str(a): Timeline() for a in self.addresses}
        self.samples = 0
        self.started = self.stopped = 0.0
        self._sockets: dict[str, socket.socket] = {}
        for server, namespace in namespaces.items():
            sock = ns.socket_in(namespace, socket.AF_NETLINK, socket.SOCK_RAW, 0)
            sock.bind((0, 0))
            sock.settimeout(2.0)
            self._sockets[server] = sock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ownership", daemon=True)

    def start(self) -> OwnershipSampler:
        """Begin sampling (bounded by `limit` seconds)."""
        self.started = time.monotonic()
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sampling and close the sockets."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self.stopped = self.stopped or time.monotonic()
        for sock in self._sockets.values():
            sock.close()

    def __enter__(self) -> OwnershipSampler:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _run(self) -> None:
        deadline = self.started + self.limit
        wanted = set(self.addresses)
        while not self._stop.is_set() and time.monotonic() < deadline:
            held: dict[str, set[str]] = {str(a): set() for a in self.addresses}
            for server, sock in self._sockets.items():
                for msg in rtnl.dump(rtnl.RTM_GETADDR, 0, sock):
                    if isinstance(msg, rtnl.AddrMessage) and msg.iface.ip in wanted:
                        held[str(msg.iface.ip)].add(server)
            now = time.monotonic()
            for address, who in held.items():
                self.timelines[address].note(now, frozenset(who))
            self.samples += 1
            self._stop.wait(self.period)
        self.stopped = time.monotonic()

    def longest_dual(self, address: str) -> float:
        """Longest time `address` was on two servers or more, in seconds."""
        return self.timelines[address].longest("many", self.stopped or time.monotonic())

    def longest_absence(self, address: str) -> float:
        """Longest time `address` was on no server, in seconds."""
        return self.timelines[address].longest("none", self.stopped or time.monotonic())

    def holders(self, address: str) -> frozenset[str]:
        """The holders at the last sample."""
        changes = self.timelines[address].changes
        return changes[-1][1] if changes else frozenset()

    def story(self, address: str) -> str:
        """The changes of holders of `address`, for assertion messages."""
        return self.timelines[address].story(self.started)


def sampler_for(lab_servers: Mapping[str, str], *addresses: str) -> OwnershipSampler:
    """A sampler of `addresses` on the servers named (server name -> namespace)."""
    return OwnershipSampler(lab_servers, list(addresses))
