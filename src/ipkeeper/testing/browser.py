"""A real browser inside the lab: Debian's Chromium, started in the client's namespace.

Playwright talks to the browser over pipes, so the browser can live in the
lab namespace (where the daemons' TCP API is) while the test stays outside.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from ipkeeper.lab import control

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium keeps trying to reach Google.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def chromium_in(namespace: str) -> Path:
    """An executable that runs Chromium inside `namespace` (written to the lab directory)."""
    if not CHROMIUM.exists():
        raise FileNotFoundError(f"{CHROMIUM} is missing: install Debian's chromium package")
    wrapper = control.lab_dir() / f"chromium-{namespace}"
    command = [sys.executable, "-m", "ipkeeper.lab.nsexec", namespace, "--", str(CHROMIUM)]
    wrapper.write_text(f'#!/bin/sh\nexec {shlex.join(command)} "$@"\n')
    wrapper.chmod(0o700)
    return wrapper
