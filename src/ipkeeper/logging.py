"""Logging set-up: levels that mean something, lines journald understands, no waiting.

- A queue sits in front of the output, so no task waits on a slow stderr.
- Under systemd (JOURNAL_STREAM names our stderr) every line starts with its
  syslog priority, `<4>` for a warning (sd-daemon(3)), and carries no time
  stamp of its own: journald stores the priority, so `journalctl -p warning`
  shows the failovers. Elsewhere a line is `time LEVEL logger: message`.
- `json` format: one JSON object per line (ts, level, logger, message).
- The same line repeated is shown `BURST` times per `WINDOW` seconds; the
  next one shown after that says how many were left out.
- `event_level` maps each event-log kind to the level its line is logged at.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import queue
import sys
import threading
import time
from typing import Literal, TextIO

LogFormat = Literal["text", "json"]
BURST = 5
WINDOW = 30.0

# Event kind -> level; (kind, words in the message) -> level overrides it.
# A failover, a peer's death, a refused takeover and a dropped frame are
# warnings; what an administrator asked for, and routine, is info.
EVENT_LEVELS: dict[str, int] = {
    "failover": logging.WARNING,
    "switchback": logging.INFO,
    "membership": logging.INFO,
    "path": logging.INFO,
    "security": logging.WARNING,
    "quorum": logging.WARNING,
    "check-failed": logging.WARNING,
    "recovery-failed": logging.ERROR,
    "restore-failed": logging.ERROR,
    "create-failed": logging.WARNING,
    "not-taken": logging.WARNING,
    "conflict": logging.WARNING,
    "unguarded": logging.WARNING,
    "config": logging.INFO,
}
EVENT_MESSAGE_LEVELS: tuple[tuple[str, str, int], ...] = (
    ("membership", " is dead", logging.WARNING),
    ("path", " down", logging.WARNING),
    ("quorum", "regained", logging.INFO),
    ("state", "could not", logging.ERROR),
    ("daemon", "unexpectedly", logging.ERROR),
    ("config", "refused", logging.ERROR),
    ("config", "restart", logging.WARNING),
    ("version", "must run the same", logging.WARNING),
)
# syslog priorities (RFC 5424) of Python's levels.
PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3}


def event_level(kind: str, message: str) -> int:
    """The level an event of `kind` is logged at: what goes wrong is a warning or worse."""
    for match_kind, words, level in EVENT_MESSAGE_LEVELS:
        if kind == match_kind and words in message:
            return level
    return EVENT_LEVELS.get(kind, logging.INFO)


def priority(levelno: int) -> int:
    """The syslog priority of a Python log level (critical and above: 2)."""
    for level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR):
        if levelno <= level:
            return PRIORITY[level]
    return 2


def under_journal(stream: TextIO | None = None) -> bool:
    """True when stderr is the journal's stream (systemd sets JOURNAL_STREAM=dev:inode)."""
    dev, _, ino = os.environ.get("JOURNAL_STREAM", "").partition(":")
    if not dev.isdigit() or not ino.isdigit():
        return False
    try:
        st = os.fstat((stream or sys.stderr).fileno())
    except (OSError, ValueError):
        return False
    return (st.st_dev, st.st_ino) == (int(dev), int(ino))


class LineFormatter(logging.Formatter):
    """Text or JSON lines, with the syslog priority prefix when journald reads them."""

    def __init__(self, fmt: LogFormat = "text", journal: bool = False) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.fmt = fmt
        self.journal = journal

    def format(self, record: logging.LogRecord) -> str:
        """One line (a traceback, if any, is kept in the same record)."""
        if self.fmt == "json":
            data = {
                "ts": round(record.created, 6),
                "level": record.levelname.lower(),
                "logger": record.name,
                "message": record.getMessage(),
            }
            if record.exc_info:
                data["exception"] = self.formatException(record.exc_info)
            line = json.dumps(data, ensure_ascii=False)
        elif self.journal:
            line = f"{record.name}: {record.getMessage()}"
            if record.exc_info:
                line += "\n" + self.formatException(record.exc_info)
        else:
            line = super().format(record)
        return f"<{priority(record.levelno)}>{line}" if self.journal else line


class RateLimit(logging.Filter):
    """Lets the same line through `burst` times per `window` seconds, then counts it."""

    def __init__(self, burst: int = BURST, window: float = WINDOW) -> None:
        super().__init__()
        self.burst = burst
        self.window = window
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, int, str], list[float]] = {}  # key -> [start, shown, left out]

    def filter(self, record: logging.LogRecord) -> bool:
        """False for a repeat beyond the burst; the first line after a quiet spell says
        how many repeats were left out."""
        key = (record.name, record.levelno, record.getMessage())
        now = time.monotonic()
        with self._lock:
            if len(self._seen) > 10_000:
                self._seen.clear()
            seen = self._seen.get(key)
            if seen is None or now - seen[0] >= self.window:
                left_out = int(seen[2]) if seen else 0
                self._seen[key] = [now, 1, 0]
                if left_out:
                    record.msg = f"{record.getMessage()} (and {left_out} more like it, not shown)"
                    record.args = None
                return True
            if seen[1] < self.burst:
                seen[1] += 1
                return True
            seen[2] += 1
            return False


class LogSetup:
    """The daemon's logging: started once, its level and format changed on reload."""

    def __init__(self, level: str = "info", fmt: LogFormat = "text") -> None:
        self.journal = under_journal()
        self.handler = logging.StreamHandler(sys.stderr)
        self.handler.setFormatter(LineFormatter(fmt, self.journal))
        records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        self.listener = logging.handlers.QueueListener(records, self.handler)
        front = logging.handlers.QueueHandler(records)
        front.addFilter(RateLimit())
        root = logging.getLogger()
        root.handlers[:] = [front]
        self.set_level(level)
        for noisy in ("uvicorn.access", "pyroute2"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        self.listener.start()

    def set_level(self, level: str) -> None:
        """Log at `level` and above from now on."""
        logging.getLogger().setLevel(level.upper())

    def set_format(self, fmt: LogFormat) -> None:
        """Write `fmt` lines from now on."""
        self.handler.setFormatter(LineFormatter(fmt, self.journal))

    def stop(self) -> None:
        """Write out what is queued and stop the background thread."""
        self.listener.stop()


def setup(level: str = "info", fmt: LogFormat = "text") -> LogSetup:
    """Log to stderr through a background thread; returns the set-up to stop at exit."""
    return LogSetup(level, fmt)
