"""A client that asks the VIP every 10 ms who answers, and what it saw.

It runs in the client's namespace on a thread of its own and records, for
every UDP echo answered, when it arrived and which server sent it. The
analysis gives what a user of the VIP experiences: the longest silence, when
the new server first answered, and whether the old one answered after that.
"""

from __future__ import annotations

import contextlib
import itertools
import select
import socket
import threading
import time
from dataclasses import dataclass, field

from ipkeeper.lab import netns as ns
from ipkeeper.lab.echo import ECHO_PORT
from ipkeeper.lab.topology import Node


@dataclass(frozen=True)
class Answer:
    """One echo answered: when it arrived (monotonic) and who answered."""

    at: float
    server: str


@dataclass
class Prober:
    """Probes `address` from `client` every `interval` seconds until stopped."""

    client: Node
    address: str
    interval: float = 0.01
    answers: list[Answer] = field(default_factory=list)
    sent: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Prober:
        """Begin probing."""
        sock = ns.socket_in(self.client.namespace, socket.AF_INET, socket.SOCK_DGRAM)
        self._thread = threading.Thread(target=self._run, args=(sock,), name="prober", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop probing (waits for the thread)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self, sock: socket.socket) -> None:
        with sock:
            next_send = time.monotonic()
            while not self._stop.is_set():
                now = time.monotonic()
                if now >= next_send:
                    self.sent += 1
                    with contextlib.suppress(OSError):
                        sock.sendto(str(self.sent).encode(), (self.address, ECHO_PORT))
                    next_send += self.interval
                ready, _, _ = select.select([sock], [], [], max(0.0, next_send - time.monotonic()))
                if ready:
                    data = sock.recv(2048)
                    self.answers.append(Answer(time.monotonic(), data.split()[-1].decode()))

    def first_from(self, server: str, after: float) -> float | None:
        """When `server` first answered after `after`, or None."""
        return next((a.at for a in self.answers if a.server == server and a.at >= after), None)

    def longest_silence(self, since: float, until: float | None = None) -> float:
        """The longest time without any answer between `since` and `until`."""
        times = [since] + [
            a.at for a in self.answers if a.at > since and (until is None or a.at <= until)
        ]
        if until is not None:
            times.append(until)
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)

    def answered_by(self, server: str, after: float) -> int:
        """How many answers came from `server` after `after`."""
        return sum(1 for a in self.answers if a.server == server and a.at > after)
