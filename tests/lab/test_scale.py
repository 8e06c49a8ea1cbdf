"""Liveness and scale in the real lab: hundreds of VIPs failing over as one, a busy main
loop that is not a dead server, a frozen daemon that is, heartbeats through packet loss."""

from __future__ import annotations

import ipaddress
import os
import signal
import time
from collections.abc import Iterator

import pytest

from ipkeeper.lab import daemons, faults
from ipkeeper.lab.arpwatch import Sweeper
from ipkeeper.lab.topology import Topology
from ipkeeper.testing import wait_until
from ipkeeper.testing.labtools import LabServer, story
from tests.conftest import App

pytestmark = pytest.mark.lab

FIRST = ipaddress.ip_address("198.18.4.10")


def group_of_vips(count: int) -> tuple[dict[str, object], list[str]]:
    """An apply document: `count` VIPs in 198.18.4.0/22 under one group, on s1 then s2."""
    last = FIRST + count - 1
    document = {
        "defaults": {"netmask": "22", "interface": "eth0", "servers": {"s1": 1, "s2": 10}},
        "ip": [{"range": f"{FIRST}-{last}"}],
        "group": [{"tag": "vips", "children": ["ip-198.18.4.*"]}],
    }
    return document, [str(FIRST + i) for i in range(count)]


def deaths(server: LabServer) -> list[str]:
    """Membership deaths this server logged since its mark."""
    return [
        e["message"]
        for e in server.events(after=server.since)
        if e["kind"] == "membership" and " is dead" in e["message"]
    ]


@pytest.fixture
def restore_daemons(lab: Topology) -> Iterator[None]:
    """Whatever a test does to the daemons' environment or processes, undone after it."""
    yield
    os.environ.pop("IPKEEPER_TEST_STALL", None)
    for node in lab.servers:
        pid = daemons.pid(node)
        if pid is not None:
            os.kill(pid, signal.SIGCONT)
        faults.lossless(node)


def test_hundreds_of_vips_in_a_group_fail_over_together(
    pair: tuple[LabServer, LabServer], lab: Topology
) -> None:
    s1, s2 = pair
    document, vips = group_of_vips(240)
    applied = s1.api("POST", "/apply", {"document": document})
    assert len(applied["create"]) == 241, applied
    s1_mac, s2_mac = (lab.node(n).port("eth0").mac for n in ("s1", "s2"))
    sweeper = Sweeper(lab.node("client"), vips, "198.18.7.254", limit=60).start()
    try:
        wait_until(lambda: len(sweeper.answered_by(s1_mac, 0)) == len(vips), 10, message="on s1")
        crashed = time.monotonic()
        faults.crash(lab.node("s1"))
        unplugged = time.monotonic()  # (a frozen s1's kernel answers until its cables go)
        wait_until(
            lambda: len(sweeper.first_from(s2_mac, crashed)) == len(vips),
            15,
            message="every VIP answered from s2",
        )
        assert not sweeper.answered_by(s1_mac, unplugged + 0.05), "s1 answered after its crash"
        faults.recover(lab.node("s1"))  # back, with intelligent switchback: nothing moves
        returned = time.monotonic()
        wait_until(lambda: s1.state("vips") == "OSU", 15, message="s1 stood down")
        time.sleep(0.5)  # one more sweep of every VIP (a measurement window, not a wait)
        both = sweeper.answered_by(s1_mac, returned) & sweeper.answered_by(s2_mac, returned)
        assert not both, f"{len(both)} VIPs answered by both servers"
        assert not sweeper.answered_by(s1_mac, returned + 1.0)
    finally:
        sweeper.stop()
    states = s2.status()["resources"]
    assert all(r["servers"]["s2"]["state"] == "ISP" for r in states), story(s1, s2)


def test_a_stalled_main_loop_is_not_a_dead_server(
    pair: tuple[LabServer, LabServer], lab: Topology, restore_daemons: None
) -> None:
    s1, s2 = pair
    node = lab.node("s1")
    daemons.stop(node)
    os.environ["IPKEEPER_TEST_STALL"] = "1.5"  # five dead times (300 ms each)
    daemons.start(node)
    wait_until(lambda: all(x["alive"] for x in s2.status()["servers"]), 10, message="rejoined")
    s2.since = s2.mark()
    pid = daemons.pid(node)
    assert pid is not None
    os.kill(pid, signal.SIGUSR2)
    time.sleep(2.5)  # the stall and more: what the peer saw meanwhile is the result
    assert deaths(s2) == [], story(s2)
    # Longer than LOOP_STALL_LIMIT, the stuck loop is said to be stuck, and peers act.
    s1.tune(LOOP_STALL_LIMIT=0.8)
    os.kill(pid, signal.SIGUSR2)
    wait_until(lambda: deaths(s2), 5, message="s2 hears that s1 is stuck")
    assert deaths(s2) == ["s1 is dead: its main loop is stuck (its heartbeats say so)"]
    wait_until(
        lambda: any("s1 is alive" in e["message"] for e in s2.events(after=s2.since)),
        10,
        message="s1 back once its loop turns",
    )


def test_a_frozen_daemon_is_dead_and_its_application_taken_over(
    pair: tuple[LabServer, LabServer], lab: Topology, restore_daemons: None, app: App
) -> None:
    s1, s2 = pair
    # An application with no address: nothing tells s2 that the frozen s1 still runs it
    # (which is what this test is about), so it must be allowed to be extended.
    s1.tune(UNGUARDED_APPS="allow")
    s1.json(*app.create_args("web"))
    s1.json("extend", "web", "--target", "s2")
    pid = daemons.pid(lab.node("s1"))
    assert pid is not None
    frozen = time.monotonic()
    os.kill(pid, signal.SIGSTOP)
    wait_until(lambda: s2.state("web") == "ISP", 10, message="s2 took the application over")
    took = time.monotonic() - frozen
    assert deaths(s2) == ["s1 is dead: every comm path is down"], story(s2)
    assert took < 10
    os.kill(pid, signal.SIGCONT)
    wait_until(lambda: all(x["alive"] for x in s2.status()["servers"]), 10, message="s1 back")


@pytest.mark.parametrize("percent", [10, 30])
def test_heartbeats_survive_packet_loss(
    pair: tuple[LabServer, LabServer], lab: Topology, restore_daemons: None, percent: int
) -> None:
    s1, s2 = pair
    s1.json("create", "ip", "--address", "198.18.0.50", "--netmask", "24")
    s1.json("extend", "ip-198.18.0.50", "--target", "s2")
    s1.since, s2.since = s1.mark(), s2.mark()
    for node in lab.servers:
        faults.lossy(node, percent)
    time.sleep(30)  # the measurement window
    for node in lab.servers:
        faults.lossless(node)
    assert deaths(s1) == [] and deaths(s2) == [], story(s1, s2)
    assert s1.state("ip-198.18.0.50") == "ISP"
