"""`make demo` keeps telling its story: the VIP fails over and comes home."""

from __future__ import annotations

import pytest

from ipkeeper.lab import build
from ipkeeper.testing import run_cli

pytestmark = pytest.mark.lab


def test_the_demo_runs_to_the_end_and_cleans_up() -> None:
    proc = run_cli("lab", "demo", timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "s1 crashes" in proc.stdout
    assert "The VIP is held by: s1." in proc.stdout
    assert "answers from s1 since then: 0" in proc.stdout
    assert build.lab_namespaces() == []
