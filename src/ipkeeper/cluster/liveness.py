"""Judging a comm path by its heartbeats (R25): pure, every time an argument.

A path is up from the first heartbeat that proves its sender alive (it
echoes one of ours) until the silence on it becomes too unlikely for a live
peer. "Too unlikely" is measured, not assumed:

- the path's loss rate over the last LOSS_WINDOW seconds is estimated from
  the gaps in the sender's sequence numbers (smoothed toward a small prior
  while little has arrived);
- the silence limit is the time in which a live peer's heartbeats would all
  be lost with probability below SILENT_ODDS at that loss rate, and never
  less than HBEAT_MISSES intervals; heartbeats that arrived late (a busy
  sender) add their worst recent lateness, so a jittery sender is given the
  time it has been seen to need.

On a clean network a crash is seen after HBEAT_MISSES intervals; with 30 %
loss after about twelve, and no heartbeat pattern that a live peer produces
more often than once in SILENT_ODDS windows takes a path down. Times are on
the caller's "awake" clock (time this process was running), so a process
that was paused does not count its own pause as the peer's silence.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

LOSS_WINDOW = 10.0  # seconds of history behind the loss and lateness estimates
SILENT_ODDS = 1e-6  # accepted chance that a live peer's heartbeats are all lost in one window
PRIOR_LOSS = 0.05  # assumed loss rate before anything has been measured
PRIOR_WEIGHT = 20.0  # heartbeats' worth of confidence in the prior
LOSS_FLOOR, LOSS_CEILING = 0.01, 0.9


@dataclass
class PathLiveness:
    """One path's heartbeats as received, and the judgement drawn from them."""

    up: bool = False
    changed_at: float = 0.0  # awake time of the last change of `up`
    last_heard: float | None = None  # awake time of the last heartbeat that counted
    peer_interval: float = 0.05
    reason: str = "no heartbeat received yet"
    _arrivals: deque[tuple[float, int]] = field(default_factory=deque)  # (awake time, seq)
    _late: deque[tuple[float, float]] = field(default_factory=deque)  # (awake time, lateness)
    _limit: tuple[int, float] | None = None  # (misses, limit) computed at the last arrival

    def heard(self, now: float, seq: int, peer_interval: float) -> bool:
        """A heartbeat that proves its sender alive arrived; True if the path just came up."""
        if self._arrivals and self.last_heard is not None:
            last_seq = self._arrivals[-1][1]
            expected = max(seq - last_seq, 1) * peer_interval
            lateness = (now - self.last_heard) - expected
            if lateness > peer_interval / 2:  # ordinary jitter is covered by HBEAT_MISSES
                self._late.append((now, lateness))
        self.peer_interval = max(peer_interval, 0.001)
        self.last_heard = now
        self._arrivals.append((now, seq))
        self._forget(now)
        self._limit = None
        if self.up:
            return False
        self.up, self.changed_at, self.reason = True, now, ""
        return True

    def restart(self) -> None:
        """The sender started a new run: its sequence numbers start again."""
        self._arrivals.clear()
        self._late.clear()
        self._limit = None

    def _forget(self, now: float) -> None:
        while self._arrivals and now - self._arrivals[0][0] > LOSS_WINDOW:
            self._arrivals.popleft()
        while self._late and now - self._late[0][0] > LOSS_WINDOW:
            self._late.popleft()

    def loss(self) -> float:
        """The estimated share of heartbeats lost on this path recently (0.01-0.9)."""
        if len(self._arrivals) < 2:
            return PRIOR_LOSS
        first, last = self._arrivals[0][1], self._arrivals[-1][1]
        expected = last - first + 1
        received = len(self._arrivals)
        lost = max(expected - received, 0)
        estimate = (lost + PRIOR_LOSS * PRIOR_WEIGHT) / (expected + PRIOR_WEIGHT)
        return min(max(estimate, LOSS_FLOOR), LOSS_CEILING)

    def lateness(self) -> float:
        """The worst lateness of a heartbeat in the window, in seconds."""
        return max((late for _, late in self._late), default=0.0)

    def silence_limit(self, misses: int) -> float:
        """Seconds of silence after which this path is judged down (see the module docstring).

        Computed again only when a heartbeat arrives (or the window moves on)."""
        if self._limit is not None and self._limit[0] == misses:
            return self._limit[1]
        beats = math.ceil(math.log(SILENT_ODDS) / math.log(self.loss()))
        limit = self.peer_interval * max(misses, beats) + self.lateness()
        self._limit = (misses, limit)
        return limit

    def judge(self, now: float, misses: int) -> bool:
        """Take the path down if it has been silent too long; True if it just went down."""
        if not self.up or self.last_heard is None:
            return False
        if self._arrivals and now - self._arrivals[0][0] > LOSS_WINDOW:
            self._forget(now)
            self._limit = None
        silent = now - self.last_heard
        limit = self.silence_limit(misses)
        if silent < limit:
            return False
        self.up, self.changed_at = False, now
        self.reason = f"no heartbeat for {silent:.2f}s (limit {limit:.2f}s, loss {self.loss():.0%})"
        return True

    def deadline(self, misses: int) -> float | None:
        """The awake time at which the path will be judged down if nothing arrives."""
        if not self.up or self.last_heard is None:
            return None
        return self.last_heard + self.silence_limit(misses)
