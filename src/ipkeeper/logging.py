"""Logging set-up: a queue in front of the handler, so no task waits on a slow stderr."""

from __future__ import annotations

import logging
import logging.handlers
import queue
import sys


def setup(level: str = "info") -> logging.handlers.QueueListener:
    """Log to stderr through a background thread; returns the listener to stop at exit."""
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    listener = logging.handlers.QueueListener(records, handler)
    root = logging.getLogger()
    root.handlers[:] = [logging.handlers.QueueHandler(records)]
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access", "pyroute2"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    listener.start()
    return listener
