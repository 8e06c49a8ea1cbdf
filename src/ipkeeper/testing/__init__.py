"""Helpers for ipkeeper's own tests and for anyone testing a kit or a deployment."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from subprocess import CompletedProcess
from typing import TypeVar

T = TypeVar("T")


def timeout_scale() -> float:
    """Multiplier for every test deadline (IPKEEPER_TIMEOUT_SCALE, default 1)."""
    try:
        return max(float(os.environ.get("IPKEEPER_TIMEOUT_SCALE", "1")), 0.1)
    except ValueError:
        return 1.0


def wait_until(
    predicate: Callable[[], T],
    timeout: float,
    interval: float = 0.02,
    message: str = "condition",
) -> T:
    """Poll `predicate` until it returns something truthy; return that value.

    Raises TimeoutError naming `message` once `timeout` (scaled by
    IPKEEPER_TIMEOUT_SCALE) has passed, so a test waits for a condition with a
    deadline instead of sleeping for a guessed time.
    """
    deadline = time.monotonic() + timeout * timeout_scale()
    last: T = predicate()
    while not last:
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {message}")
        time.sleep(interval)
        last = predicate()
    return last


def run_cli(
    *args: str, check: bool = False, timeout: float = 60.0, env: dict[str, str] | None = None
) -> CompletedProcess[str]:
    """Run the `ipkeeper` command as a user would; returns the finished process."""
    proc = subprocess.run(
        [sys.executable, "-m", "ipkeeper", *args],
        capture_output=True,
        text=True,
        timeout=timeout * timeout_scale(),
        env={**os.environ, **(env or {})},
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"ipkeeper {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return proc
