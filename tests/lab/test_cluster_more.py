"""More of the cluster (R5, R22, R25, R32): a daemon killed alone, a server that loses
its network, a server that rejoins after changes, conflicting changes."""

from __future__ import annotations

import time

import pytest

from ipkeeper.lab import daemons, faults, probe
from ipkeeper.lab.topology import Topology
from ipkeeper.testing import wait_until
from ipkeeper.testing.labtools import LabServer, holders, story

pytestmark = pytest.mark.lab

VIP = "198.18.0.50"
TAG = f"ip-{VIP}"


def backed_up_vip(s1: LabServer) -> None:
    s1.json("create", "ip", "--address", VIP, "--netmask", "24")
    s1.json("extend", TAG, "--target", "s2")


def test_a_daemon_killed_alone_leaves_its_vip_to_be_adopted(
    pair: tuple[LabServer, LabServer], lab: Topology
) -> None:
    s1, s2 = pair
    backed_up_vip(s1)
    daemons.kill(lab.node("s1"))
    wait_until(
        lambda: any(e["kind"] == "not-taken" for e in s2.events(TAG, s2.since)),
        5,
        message="s2 refused",
    )
    assert holders([s1, s2], VIP) == ["s1"]  # never on both
    assert probe.ping(lab.node("client"), VIP) is not None
    daemons.start(lab.node("s1"))
    assert s1.state(TAG) == "ISP"
    assert any(e["kind"] == "adopted" for e in s1.events(TAG, s1.since))
    wait_until(lambda: s2.state(TAG, "s1") == "ISP", 5, message="s2 hears s1 holds it")
    assert holders([s1, s2], VIP) == ["s1"]


def test_a_server_that_loses_its_network_gives_its_vip_up(
    pair: tuple[LabServer, LabServer], lab: Topology
) -> None:
    s1, s2 = pair
    backed_up_vip(s1)
    faults.unplug(lab.node("s1"))  # both cables; s1's daemon keeps running
    wait_until(lambda: not s1.has_address(VIP), 5, message="s1 released the VIP")
    wait_until(lambda: s2.has_address(VIP), 5, message="s2 took it over")
    assert s1.state(TAG) == "OSF"
    faults.plug(lab.node("s1"))
    wait_until(lambda: all(x["alive"] for x in s1.status()["servers"]), 5, message="s1 rejoined")
    assert holders([s1, s2], VIP) == ["s2"], story(s1, s2)


def test_out_of_service_holds_while_the_dead_holder_is_still_down(
    pair: tuple[LabServer, LabServer], lab: Topology
) -> None:
    s1, s2 = pair
    backed_up_vip(s1)
    faults.crash(lab.node("s1"))
    wait_until(lambda: s2.state(TAG) == "ISP", 5, message="s2 took over")
    mark = s2.mark()
    s2.json("out-of-service", TAG)
    # s1's last report still says it held the VIP when it died; that must not
    # bring it back. Watch four passes of the failover loop (every 0.5 s).
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        assert not s2.has_address(VIP), [e["message"] for e in s2.events(TAG, mark)]
        time.sleep(0.05)  # polling interval of an observation, not a synchronisation
    assert s2.state(TAG) == "OSU"
    assert not [e for e in s2.events(TAG, mark) if e["kind"] == "failover"]
    # The administrator's in-service still works, and s1's return changes nothing.
    s2.json("in-service", TAG)
    assert s2.has_address(VIP)
    faults.recover(lab.node("s1"))  # still carrying the address from before the crash
    wait_until(lambda: not s1.has_address(VIP), 5, message="s1 took its leftover down")
    assert s1.state(TAG) == "OSU"
    assert holders([s1, s2], VIP) == ["s2"]


def test_a_server_that_was_down_learns_what_changed(
    pair: tuple[LabServer, LabServer], lab: Topology
) -> None:
    s1, s2 = pair
    backed_up_vip(s1)
    s1.json("create", "ip", "--address", "198.18.0.51", "--netmask", "24")
    s1.json("extend", "ip-198.18.0.51", "--target", "s2")
    daemons.stop(lab.node("s2"))
    s1.json("set", TAG, "switchback", "automatic")
    s1.json("delete", "ip-198.18.0.51")
    daemons.start(lab.node("s2"))
    wait_until(
        lambda: [r["tag"] for r in s2.status()["resources"]] == [TAG], 5, message="deletion learnt"
    )
    wait_until(
        lambda: s2.json("show", TAG)["switchback"] == "automatic", 5, message="change learnt"
    )


def test_conflicting_changes_are_refused_not_merged(
    pair: tuple[LabServer, LabServer], lab: Topology
) -> None:
    s1, s2 = pair
    backed_up_vip(s1)
    with faults.comm_paths_cut(lab.node("s1"), "198.18.0.12"):
        wait_until(
            lambda: not all(x["alive"] for x in s1.status()["servers"]), 5, message="partitioned"
        )
        s1.json("set", TAG, "switchback", "automatic")
        s2.json("set", TAG, "source-address", "yes")
    for server in (s1, s2):
        wait_until(
            lambda s=server: any(e["kind"] == "conflict" for e in s.events(after=s.since)),
            5,
            message="conflict",
        )
    # Neither change was merged into the other server's definition.
    assert s1.json("show", TAG)["switchback"] == "automatic"
    assert s2.json("show", TAG)["switchback"] == "intelligent"
    assert s1.json("show", TAG, "--server", "s2")["source_address"] == "yes"


def test_extend_asked_of_any_server_runs_on_the_template(pair: tuple[LabServer, LabServer]) -> None:
    s1, s2 = pair
    s1.json("create", "ip", "--address", VIP, "--netmask", "24")
    extended = s2.json("extend", TAG, "--target", "s2", "--target-priority", "20")  # asked of s2
    assert extended["extended"] == [TAG] and extended["target_priority"] == 20
    assert [(e["server"], e["priority"]) for e in s2.json("show", TAG)["equivalents"]] == [
        ("s1", 1),
        ("s2", 20),
    ]


def test_extend_copies_the_ping_list_and_can_name_the_target_differently(
    pair: tuple[LabServer, LabServer],
) -> None:
    s1, s2 = pair
    s1.json("create", "ip", "--address", VIP, "--netmask", "24")
    s1.json("pinglist", TAG, "add", "198.18.0.1")
    s1.json("set", TAG, "source-address", "yes")
    s1.json("extend", TAG, "--target", "s2", "--target-tag", "vip-b", "--switchback", "automatic")
    on_s2 = s2.json("show", "vip-b")
    assert (on_s2["tag"], on_s2["server"], on_s2["switchback"]) == ("vip-b", "s2", "automatic")
    assert on_s2["source_address"] == "yes"  # R14: copied at extend
    assert on_s2["ping_list"] == ["198.18.0.1"]  # R13: copied at extend ...
    s2.json("pinglist", "vip-b", "add", "198.18.0.100")
    assert s1.json("pinglist", TAG)["addresses"] == ["198.18.0.1"]  # ... then each server's own
    assert s2.json("pinglist", "vip-b")["addresses"] == ["198.18.0.1", "198.18.0.100"]
    assert [(e["server"], e["tag"]) for e in s1.json("show", TAG)["equivalents"]] == [
        ("s1", TAG),
        ("s2", "vip-b"),
    ]
