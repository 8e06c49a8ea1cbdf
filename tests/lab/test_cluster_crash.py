"""kill -9 of a daemon in the middle of an extend and of a failover (R31, R32): after
a restart the cluster converges, every server's store agrees, one server holds the VIP."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from ipkeeper.lab import daemons, faults
from ipkeeper.lab.topology import Topology
from ipkeeper.testing import wait_until
from ipkeeper.testing.labtools import LabServer, catalog, holders

pytestmark = pytest.mark.lab


def views(server: LabServer) -> dict[str, dict[str, str | None]]:
    """Each resource's state on every server, as this server sees it."""
    return {
        r["tag"]: {n: i["state"] for n, i in r["servers"].items()}
        for r in server.status()["resources"]
    }


def converged(s1: LabServer, s2: LabServer) -> bool:
    return catalog(s1) == catalog(s2) and views(s1) == views(s2)


@pytest.mark.parametrize("delay", [0.0, 0.01, 0.03, 0.1])
def test_kill_during_extend(pair: tuple[LabServer, LabServer], lab: Topology, delay: float) -> None:
    s1, s2 = pair
    vip = "198.18.0.70"
    s1.json("create", "ip", "--address", vip, "--netmask", "24")
    cli = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ipkeeper",
            "extend",
            f"ip-{vip}",
            "--target",
            "s2",
            "--socket",
            str(s1.socket),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        time.sleep(delay)  # the point at which the crash hits (not a synchronisation)
        daemons.kill(lab.node("s1"))
    finally:
        cli.communicate(timeout=30)
    daemons.start(lab.node("s1"))
    wait_until(lambda: converged(s1, s2), 10, message="both stores agree")
    assert holders([s1, s2], vip) == ["s1"]
    assert s1.state(f"ip-{vip}") == "ISP"


def test_kill_during_failover(pair: tuple[LabServer, LabServer], lab: Topology) -> None:
    s1, s2 = pair
    vip = "198.18.0.71"
    tag = f"ip-{vip}"
    s1.json("create", "ip", "--address", vip, "--netmask", "24")
    s1.json("extend", tag, "--target", "s2")
    s2.tune(IP_UNIQUE_WAIT=3)  # a slow takeover, to be interrupted
    faults.crash(lab.node("s1"))

    def pending_on_s2() -> str | None:
        for res in s2.status()["resources"]:
            if res["tag"] == tag:
                return res["servers"]["s2"].get("pending")
        return None

    wait_until(lambda: pending_on_s2() == "restore", 5, message="s2 taking over")
    daemons.kill(lab.node("s2"))
    s2.tune()
    daemons.start(lab.node("s2"))
    assert s2.state(tag) == "ISP"  # the interrupted takeover was finished at start-up
    assert holders([s2], vip) == ["s2"]
    faults.recover(lab.node("s1"))
    wait_until(lambda: converged(s1, s2), 10, message="both stores agree")
    assert holders([s1, s2], vip) == ["s2"]
    assert views(s1)[tag] == {"s1": "OSU", "s2": "ISP"}
