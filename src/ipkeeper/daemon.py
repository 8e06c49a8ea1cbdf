"""`ipkeeperd`: the per-server daemon (a stub until the daemon issue lands)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading


def main(argv: list[str] | None = None) -> None:
    """Start, wait for SIGTERM or SIGINT, stop cleanly."""
    parser = argparse.ArgumentParser(prog="ipkeeperd")
    parser.add_argument("--config", default="/etc/ipkeeper/ipkeeper.toml")
    parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print("ipkeeperd: started", file=sys.stderr, flush=True)
    stop.wait()
    print("ipkeeperd: stopped", file=sys.stderr, flush=True)
