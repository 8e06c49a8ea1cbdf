"""kill -9 of the daemon in the middle of an operation: after a restart the store
and the kernel agree, and status tells the truth (R31)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from ipkeeper.lab import daemons
from ipkeeper.lab.topology import Topology
from ipkeeper.testing import wait_until
from ipkeeper.testing.labtools import LabServer
from tests.conftest import App

pytestmark = pytest.mark.lab

VIP = "198.18.0.50"
TAG = f"ip-{VIP}"


def pending(s1: LabServer, tag: str) -> str | None:
    for res in s1.status()["resources"]:
        if res["tag"] == tag:
            return res["servers"]["s1"].get("pending")
    return None


@pytest.fixture
def background(servers: dict[str, LabServer]) -> Iterator[list[subprocess.Popen[str]]]:
    """CLI commands started in the background; reaped at the end."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        proc.kill()
        proc.communicate()


def start_cli(
    s1: LabServer, procs: list[subprocess.Popen[str]], *args: str
) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ipkeeper", *args, "--socket", str(s1.socket)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    procs.append(proc)
    return proc


def crash_and_restart(s1: LabServer, lab: Topology) -> None:
    node = lab.node("s1")
    daemons.kill(node)
    s1.tune()
    daemons.start(node)


def test_kill_during_create(servers: dict[str, LabServer], lab: Topology, background: list) -> None:
    s1 = servers["s1"]
    s1.tune(IP_UNIQUE_WAIT=5)
    cli = start_cli(s1, background, "create", "ip", "--address", VIP, "--netmask", "24")
    wait_until(lambda: pending(s1, TAG) == "create", 10, message="create in flight")
    crash_and_restart(s1, lab)
    out, err = cli.communicate(timeout=10)
    assert cli.returncode == 1, out + err
    assert err.startswith("error: daemon:")
    assert s1.state(TAG) == "ISP"
    assert s1.has_address(VIP)
    assert any("creation was interrupted" in e["message"] for e in s1.events(TAG))


def test_kill_during_in_service(
    servers: dict[str, LabServer], lab: Topology, background: list
) -> None:
    s1 = servers["s1"]
    s1.json("create", "ip", "--address", VIP, "--netmask", "24")
    s1.json("out-of-service", TAG)
    s1.tune(IP_UNIQUE_WAIT=5)
    start_cli(s1, background, "in-service", TAG)
    wait_until(lambda: pending(s1, TAG) == "restore", 10, message="in-service in flight")
    crash_and_restart(s1, lab)
    assert s1.state(TAG) == "ISP"
    assert s1.has_address(VIP)
    assert any("bring-up was interrupted" in e["message"] for e in s1.events(TAG))


def test_kill_during_delete(
    servers: dict[str, LabServer], lab: Topology, app: App, background: list
) -> None:
    s1 = servers["s1"]
    s1.json("create", "ip", "--address", VIP, "--netmask", "24")
    s1.json(*app.create_args())
    s1.json("depend", "app", TAG)
    app.mark("delay", "3")
    start_cli(s1, background, "delete", TAG)
    wait_until(lambda: pending(s1, "app") == "delete", 10, message="delete in flight")
    crash_and_restart(s1, lab)
    app.unmark("delay")
    assert s1.status()["resources"] == []
    assert not s1.has_address(VIP)
    assert not (app.dir / "running").exists()


def test_restart_adopts_what_is_up_and_removes_what_should_not_be(
    servers: dict[str, LabServer], lab: Topology
) -> None:
    s1 = servers["s1"]
    s1.json("create", "ip", "--address", VIP, "--netmask", "24")
    crash_and_restart(s1, lab)
    assert s1.state(TAG) == "ISP" and s1.has_address(VIP)
    assert any(e["kind"] == "adopted" for e in s1.events(TAG))

    s1.json("out-of-service", TAG)
    from ipkeeper.testing.labtools import addr_change

    addr_change(lab.node("s1"), "eth0", f"{VIP}/24", add=True)  # someone puts it back by hand
    crash_and_restart(s1, lab)
    assert s1.state(TAG) == "OSU"
    assert not s1.has_address(VIP)
    assert any("recorded out of service but active" in e["message"] for e in s1.events(TAG))
