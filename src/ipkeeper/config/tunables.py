"""Tunables (R11): shell-style KEY=VALUE lines in /etc/default/ipkeeper.

The file is consulted every time a value is used, so an edit takes effect at
the next check without a restart; it is only re-parsed when its size, inode
or modification time changed. An invalid value is reported once (per distinct
value) and the default used instead; a missing or unreadable file means every
default. The file is never executed: values are split with shlex. A file
that another user owns or that group or others may write is not read (the
daemon refuses to start with one; at run time the values in force are kept,
and the error logged), since whoever could write it could turn off the
unique-address check.
"""

from __future__ import annotations

import logging
import os
import shlex
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ipkeeper.config.permissions import owner_and_writers

log = logging.getLogger("ipkeeper.tunables")

DEFAULT_PATH = Path("/etc/default/ipkeeper")


def _bool01(text: str) -> bool:
    if text not in ("0", "1"):
        raise ValueError("must be 0 or 1")
    return text == "1"


def _number(kind: Callable[[str], Any], low: float, high: float) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise ValueError(f"must be a {'whole ' if kind is int else ''}number") from None
        if not low <= value <= high:
            raise ValueError(f"must be between {low:g} and {high:g}")
        return value

    return parse


def _choice(*options: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return text

    return parse


@dataclass(frozen=True)
class Tunable:
    """One tunable: its name, default, parser and what it does."""

    name: str
    default: Any
    parse: Callable[[str], Any]
    unit: str
    help: str


# The table the README's tunables section is checked against.
TUNABLES: dict[str, Tunable] = {
    t.name: t
    for t in (
        Tunable(
            "NOBCASTPING",
            False,
            _bool01,
            "0/1",
            "1: skip the broadcast ping when no ping list is defined (R9)",
        ),
        Tunable(
            "NOIPUNIQUE",
            False,
            _bool01,
            "0/1",
            "1: skip the unique-address check before bring-up (R6)",
        ),
        Tunable(
            "IP_PINGTIME",
            1.0,
            _number(float, 0.01, 60),
            "s",
            "wait for an echo reply, per try (R9)",
        ),
        Tunable(
            "IP_PINGTRIES",
            3,
            _number(int, 1, 20),
            "count",
            "ping tries before the reachability test fails (R9)",
        ),
        Tunable(
            "IP_PINGPRELOAD",
            1,
            _number(int, 1, 20),
            "count",
            "echo requests sent at once per try (R9)",
        ),
        Tunable(
            "IP_NOSAVEREPLY",
            False,
            _bool01,
            "0/1",
            "1: do not remember the first broadcast responder (R9)",
        ),
        Tunable(
            "IP_NOLINKCHECK", False, _bool01, "0/1", "1: skip the link-up step of the check (R9)"
        ),
        Tunable(
            "IP_UNIQUE_WAIT",
            0.02,
            _number(float, 0.01, 10),
            "s",
            "listen time of the ARP probe / IPv6 DAD (R6)",
        ),
        Tunable(
            "IP_UNIQUE_PROBES",
            3,
            _number(int, 1, 10),
            "count",
            "probes sent during IP_UNIQUE_WAIT (R6)",
        ),
        Tunable(
            "IP_GARP_COUNT",
            3,
            _number(int, 1, 20),
            "count",
            "gratuitous ARPs / unsolicited NAs of each burst after a bring-up (R7)",
        ),
        Tunable(
            "IP_GARP_INTERVAL",
            0.2,
            _number(float, 0.001, 10),
            "s",
            "time between the announcements of one burst (the first leaves at once) (R7)",
        ),
        Tunable(
            "IP_GARP_REPEAT_DELAY",
            5.0,
            _number(float, 0, 3600),
            "s",
            "a second burst this long after the first announcement (keepalived's "
            "garp_master_delay); 0: none (R7)",
        ),
        Tunable(
            "IP_CONFLICT_DETECT",
            True,
            _bool01,
            "0/1",
            "1: listen for other hosts announcing a VIP held here (an address conflict), "
            "defend it and report it; 0: no listener",
        ),
        Tunable(
            "DEFEND_INTERVAL",
            10.0,
            _number(float, 0.1, 3600),
            "s",
            "RFC 5227's DEFEND_INTERVAL: at most one defensive announcement per address this "
            "often; a conflict ends once no conflicting ARP came for this long",
        ),
        Tunable(
            "CHECK_INTERVAL",
            1.0,
            _number(float, 0.1, 3600),
            "s",
            "time between health checks of an in-service resource (R9)",
        ),
        Tunable(
            "RECOVERY_TRIES",
            1,
            _number(int, 0, 10),
            "count",
            "local recoveries per RECOVERY_WINDOW before the hierarchy fails over (R10)",
        ),
        Tunable(
            "HBEAT_INTERVAL",
            0.1,
            _number(float, 0.01, 10),
            "s",
            "time between heartbeats on each comm path (R25)",
        ),
        Tunable(
            "HBEAT_MISSES",
            3,
            _number(int, 2, 100),
            "count",
            "heartbeat intervals without any frame before a path is down (R25)",
        ),
        Tunable(
            "HBEAT_REALTIME",
            True,
            _bool01,
            "0/1",
            "1: the heartbeat thread runs at real-time priority with memory locked, where permitted",
        ),
        Tunable(
            "LOOP_STALL_LIMIT",
            5.0,
            _number(float, 0.5, 600),
            "s",
            "a main loop that has not turned for this long is stuck: heartbeats say so and "
            "peers stop counting this server as alive",
        ),
        Tunable(
            "QUORUM",
            "none",
            _choice("none", "majority"),
            "mode",
            "majority: a server that sees at most half the votes takes nothing over (R32)",
        ),
        Tunable(
            "QUORUM_RELEASE",
            2.0,
            _number(float, 0, 3600),
            "s",
            "time in a minority after which a server gives its own resources up (R32)",
        ),
        Tunable(
            "QUORUM_GRACE",
            1.0,
            _number(float, 0, 3600),
            "s",
            "with QUORUM=majority, what a takeover from a dead server waits beyond "
            "QUORUM_RELEASE: the time a merely cut-off holder may need to take it down (R32)",
        ),
        Tunable(
            "UNGUARDED_APPS",
            "refuse",
            _choice("refuse", "allow"),
            "mode",
            "with QUORUM=none, refuse: an extend, undepend or apply that would leave an "
            "application with no IP resource below it on two servers (nothing would stop it "
            "running on both when the comm paths are cut) is refused; allow: it passes, with "
            "a warning",
        ),
        Tunable(
            "EVENTS_MAX_ROWS",
            100_000,
            _number(int, 1000, 10_000_000),
            "count",
            "events kept at most (the oldest are deleted first)",
        ),
        Tunable(
            "EVENTS_MAX_AGE",
            30 * 86400.0,
            _number(float, 3600, 10 * 365 * 86400),
            "s",
            "events older than this are deleted (30 days)",
        ),
        Tunable(
            "EVENTS_COALESCE",
            60.0,
            _number(float, 0, 86400),
            "s",
            "an event identical to one this recent adds to its count instead of a row",
        ),
        Tunable(
            "SWITCHBACK_DELAY",
            5.0,
            _number(float, 0, 3600),
            "s",
            "automatic switchback waits until the better server has been up this long "
            "(a flapping server never gets it back)",
        ),
        Tunable(
            "LINK_DEBOUNCE",
            0.3,
            _number(float, 0, 60),
            "s",
            "a link down for less than this triggers no recovery or failover",
        ),
        Tunable(
            "NO_RESPONDER",
            "keep",
            _choice("keep", "failover"),
            "mode",
            "keep: a VIP whose check fails only because nobody on its subnet answers, from "
            "this server or any other, stays in service here (ISU, an alarm) and becomes ISP "
            "again when a responder answers; failover: treated as any failure",
        ),
        Tunable(
            "RECOVERY_WINDOW",
            60.0,
            _number(float, 1, 86400),
            "s",
            "the window RECOVERY_TRIES counts in",
        ),
        Tunable(
            "API_AUTH_FAILURES",
            10,
            _number(int, 1, 10000),
            "count",
            "failed API authentications from one source within API_AUTH_WINDOW that block it",
        ),
        Tunable(
            "API_AUTH_WINDOW",
            60.0,
            _number(float, 1, 86400),
            "s",
            "the window API_AUTH_FAILURES counts in",
        ),
        Tunable(
            "API_AUTH_BLOCK",
            60.0,
            _number(float, 1, 86400),
            "s",
            "how long a blocked source is refused (429) before it may try again",
        ),
    )
}


@dataclass(frozen=True)
class Effective:
    """A tunable's value in force and where it came from."""

    name: str
    value: Any
    source: str  # "default", "file", or "default (invalid: <reason>)"


def parse_lines(text: str) -> dict[str, str]:
    """KEY=VALUE pairs from shell-style text; comments, blanks and `export` allowed."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].strip()
        key, sep, rest = line.partition("=")
        if not sep or not key.isidentifier():
            continue
        try:
            words = shlex.split(rest, comments=True)
        except ValueError:
            words = [rest]
        values[key] = words[0] if words else ""
    return values


class Tunables:
    """Reads tunables from a file at each use (cheaply: only re-parsed when it changed)."""

    def __init__(self, path: Path | str = DEFAULT_PATH) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int, int, int] | None = None
        self._raw: dict[str, str] = {}
        self._reported: set[tuple[str, str]] = set()

    def use(self, path: Path | str) -> None:
        """Read tunables from `path` from now on (a reload changed the file's name)."""
        with self._lock:
            self.path = Path(path)
            self._stamp = None
            self._raw = {}
            self._reported.clear()

    def _current(self) -> dict[str, str]:
        try:
            st = os.stat(self.path)
            stamp = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_mode, st.st_uid)
        except OSError:
            st, stamp = None, None
        with self._lock:
            if stamp != self._stamp:
                self._stamp = stamp
                distrust = owner_and_writers(st) if st is not None else None
                if distrust is not None:
                    # Whoever may write it could set NOIPUNIQUE=1: what is in force stays.
                    log.error("tunables: %s: %s; keeping the values in force", self.path, distrust)
                    return self._raw
                try:
                    self._raw = parse_lines(self.path.read_text()) if stamp else {}
                except (OSError, UnicodeDecodeError) as exc:
                    log.warning("tunables: cannot read %s: %s; using defaults", self.path, exc)
                    self._raw = {}
            return self._raw

    def effective(self, name: str) -> Effective:
        """The value of `name` now, with its source; invalid values fall back to the default."""
        tunable = TUNABLES[name]
        raw = self._current().get(name)
        if raw is None:
            return Effective(name, tunable.default, "default")
        try:
            return Effective(name, tunable.parse(raw), "file")
        except ValueError as exc:
            if (name, raw) not in self._reported:
                self._reported.add((name, raw))
                log.warning(
                    "tunables: %s=%r in %s %s; using the default %r",
                    name,
                    raw,
                    self.path,
                    exc,
                    tunable.default,
                )
            return Effective(name, tunable.default, f"default (invalid {raw!r}: {exc})")

    def get(self, name: str) -> Any:
        """The value of `name` in force right now."""
        return self.effective(name).value

    def all(self) -> list[Effective]:
        """Every tunable's value and source, in declaration order."""
        return [self.effective(name) for name in TUNABLES]
