"""Lab lifecycle (R34): up and down leave nothing behind, even when interrupted."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest

from ipkeeper.lab import build, control
from ipkeeper.lab import netns as ns
from ipkeeper.testing import run_cli, wait_until
from tests.conftest import root_snapshot

pytestmark = pytest.mark.lab


def test_up_and_down_leave_the_root_namespace_alone() -> None:
    before = root_snapshot()
    control.down()
    control.up(3)
    try:
        assert root_snapshot() == before
    finally:
        control.down()
    assert root_snapshot() == before
    assert build.lab_namespaces() == []


def test_down_stops_every_process_in_the_lab() -> None:
    topology = control.up(2)
    try:
        started = control.spawn(topology.node("s1"), "sleeper", ["sleep", "300"])
        stray = subprocess.Popen(
            [sys.executable, "-m", "ipkeeper", "lab", "exec", "s2", "--", "sleep", "300"],
            start_new_session=True,
        )
        wait_until(lambda: stray.pid in ns.pids_in(["ipk-s2"]), 10, message="stray in ipk-s2")
    finally:
        control.down()
    assert stray.wait(timeout=10) == -signal.SIGTERM
    assert not ns.alive(started)
    assert build.lab_namespaces() == []


INTERRUPTED_UP = textwrap.dedent(
    """
    import os, signal, sys
    from ipkeeper.lab import control
    steps = []
    def progress(step):
        steps.append(step)
        if len(steps) == int(sys.argv[1]):
            os.kill(os.getpid(), signal.SIGKILL)
    control.up(2, progress=progress)
    """
)


@pytest.mark.parametrize("killed_after", [1, 3, 5, 6, 8])
def test_down_cleans_up_after_an_interrupted_up(killed_after: int) -> None:
    control.down()
    proc = subprocess.run([sys.executable, "-c", INTERRUPTED_UP, str(killed_after)], timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert build.lab_namespaces(), "the interrupted up should have left something behind"
    done = run_cli("lab", "down")
    assert done.returncode == 0, done.stderr
    assert build.lab_namespaces() == []
    assert not control.lab_dir().exists()


def test_up_completes_an_interrupted_up() -> None:
    control.down()
    proc = subprocess.run([sys.executable, "-c", INTERRUPTED_UP, "6"], timeout=60)
    assert proc.returncode == -signal.SIGKILL
    try:
        assert run_cli("lab", "up").returncode == 0
        assert (
            run_cli("lab", "exec", "client", "--", "ping", "-c1", "-W1", "198.18.0.12").returncode
            == 0
        )
    finally:
        control.down()


def test_down_after_a_real_kill_in_the_middle_of_up() -> None:
    control.down()
    proc = subprocess.Popen([sys.executable, "-m", "ipkeeper", "lab", "up", "--servers", "6"])
    try:
        wait_until(lambda: ns.exists("ipk-s2"), 30, interval=0.001, message="ipk-s2")
    finally:
        proc.kill()
        proc.wait()
    assert run_cli("lab", "down").returncode == 0
    assert build.lab_namespaces() == []
