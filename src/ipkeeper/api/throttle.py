"""Failed authentications counted per source; a source that fails too often is refused.

A source (an IPv4 address, or an IPv6 /64) that fails `failures` times within
`window` seconds is refused (429, without its token even being looked at)
for `block` seconds; the three numbers are tunables (API_AUTH_FAILURES,
API_AUTH_WINDOW, API_AUTH_BLOCK), read at each use. Each block is reported
once (a `security` event); every failure and every refusal is counted. The
table is bounded: beyond MAX_SOURCES the source heard from least recently is
forgotten, so many addresses cannot exhaust memory.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

MAX_SOURCES = 4096


@dataclass(frozen=True)
class Limits:
    """How many failures within how many seconds block a source, and for how long."""

    failures: int = 10
    window: float = 60.0
    block: float = 60.0


@dataclass
class _Source:
    failures: deque[float] = field(default_factory=deque)
    blocked_until: float = 0.0


class FailureGuard:
    """Counts failures per source and says whether a source is refused now."""

    def __init__(
        self,
        limits: Callable[[], Limits] = Limits,
        on_block: Callable[[str, Limits], None] | None = None,
        on_failure: Callable[[str], None] | None = None,
        on_refused: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits
        self.on_block = on_block
        self.on_failure = on_failure
        self.on_refused = on_refused
        self.clock = clock
        self._sources: OrderedDict[str, _Source] = OrderedDict()

    def refused(self, source: str) -> float | None:
        """Seconds until `source` may try again, or None when it may now."""
        entry = self._sources.get(source)
        if entry is None:
            return None
        left = entry.blocked_until - self.clock()
        if left <= 0:
            return None
        if self.on_refused is not None:
            self.on_refused()
        return left

    def failed(self, source: str, reason: str) -> None:
        """Count one failed authentication from `source`; block it at the threshold."""
        if self.on_failure is not None:
            self.on_failure(reason)
        now = self.clock()
        limits = self.limits()
        entry = self._sources.pop(source, None) or _Source()
        self._sources[source] = entry  # most recently heard from: last
        while len(self._sources) > MAX_SOURCES:
            self._sources.popitem(last=False)
        entry.failures.append(now)
        while entry.failures and entry.failures[0] <= now - limits.window:
            entry.failures.popleft()
        if len(entry.failures) >= limits.failures:
            entry.failures.clear()
            entry.blocked_until = now + limits.block
            if self.on_block is not None:
                self.on_block(source, limits)
