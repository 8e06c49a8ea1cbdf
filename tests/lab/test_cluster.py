"""Two servers: extend, switchover, failover, switchback, comm paths (R18-R25)."""

from __future__ import annotations

import pytest

from ipkeeper.lab import faults, probe
from ipkeeper.lab.topology import Topology
from ipkeeper.testing import wait_until
from ipkeeper.testing.labtools import LabServer, addr_change, holders, on, story
from tests.conftest import App

pytestmark = pytest.mark.lab

VIP = "198.18.0.50"
TAG = f"ip-{VIP}"


def states(server: LabServer, tag: str) -> dict[str, str | None]:
    for res in server.status()["resources"]:
        if res["tag"] == tag:
            return {name: inst["state"] for name, inst in res["servers"].items()}
    return {}


def vip_with_backup(s1: LabServer, *create: str) -> None:
    s1.json("create", "ip", "--address", VIP, "--netmask", "24", *create)
    s1.json("extend", TAG, "--target", "s2")


def test_typical_app_on_ip_extended_switched_over_and_back(
    pair: tuple[LabServer, LabServer], app: App, lab: Topology
) -> None:
    s1, s2 = pair
    s1.json("create", "ip", "--address", VIP, "--netmask", "24")
    s1.json(*app.create_args())
    s1.json("depend", "app", TAG)
    extended = s1.json("extend", "app", "--target", "s2", "--target-priority", "10")
    assert sorted(extended["extended"]) == ["app", TAG]  # the parent took its child along
    wait_until(
        lambda: states(s2, "app") == {"s1": "ISP", "s2": "OSU"}, 5, message="s2 knows the app"
    )
    shown = s2.json("show", TAG)
    assert [(e["server"], e["priority"]) for e in shown["equivalents"]] == [("s1", 1), ("s2", 10)]
    assert shown["interface"] == "eth0"

    moved = s1.json("in-service", "app", "--server", "s2")
    assert moved["server"] == "s2"
    assert states(s1, "app") == {"s1": "OSU", "s2": "ISP"} and states(s1, TAG) == {
        "s1": "OSU",
        "s2": "ISP",
    }
    assert holders([s1, s2], VIP) == ["s2"]
    reply = probe.ping(lab.node("client"), VIP)
    assert reply is not None
    # The app was stopped on s1 before its address went, and started on s2 after it came.
    moves = [line for line in app.log() if line.split()[0] in ("start", "stop")]
    assert moves[-2:] == ["stop vip=1", "start vip=1"]

    s2.json("in-service", "app", "--server", "s1")
    assert holders([s1, s2], VIP) == ["s1"]
    assert states(s2, "app") == {"s1": "ISP", "s2": "OSU"}


def test_active_active_two_vips_in_a_new_subnet(
    pair: tuple[LabServer, LabServer], lab: Topology
) -> None:
    s1, s2 = pair
    router = lab.node("router")
    addr_change(
        router, "eth0", "198.18.5.1/24", add=True
    )  # the guide's router step for the new subnet
    try:
        s1.json(
            "create",
            "ip",
            "--address",
            "198.18.5.10",
            "--netmask",
            "255.255.255.0",
            "--interface",
            "eth0",
        )
        s2.json(
            "create",
            "ip",
            "--address",
            "198.18.5.11",
            "--netmask",
            "255.255.255.0",
            "--interface",
            "eth0",
        )
        # On s2 the new subnet is already up on eth0 (its own VIP), so the backup must go there too (R3).
        refused = s1.cli("extend", "ip-198.18.5.10", "--target", "s2", "--interface", "eth1")
        assert refused.returncode == 1
        assert refused.stderr.startswith(
            "error: interface: on s2: 198.18.5.0/24 is already up on eth0"
        )
        s1.json("extend", "ip-198.18.5.10", "--target", "s2")
        s2.json("extend", "ip-198.18.5.11", "--target", "s1")
        assert s2.json("show", "ip-198.18.5.10")["interface"] == "eth0"
        assert s1.json("show", "ip-198.18.5.11")["interface"] == "eth0"
        assert holders([s1, s2], "198.18.5.10") == ["s1"]
        assert holders([s1, s2], "198.18.5.11") == ["s2"]
        for vip in ("198.18.5.10", "198.18.5.11"):
            assert probe.ping(router, vip) is not None
    finally:
        addr_change(router, "eth0", "198.18.5.1/24", add=False)


@pytest.mark.parametrize("switchback", ["intelligent", "automatic"])
def test_crash_of_s1_and_its_return(
    pair: tuple[LabServer, LabServer], lab: Topology, switchback: str
) -> None:
    s1, s2 = pair
    vip_with_backup(s1, "--switchback", switchback)
    client = lab.node("client")
    faults.crash(lab.node("s1"))
    wait_until(lambda: s2.state(TAG) == "ISP", 5, message="s2 took over")
    reply = wait_until(
        lambda: probe.ping(client, VIP, timeout=0.2), 3, message="client traffic resumes"
    )
    assert str(reply.responder) == VIP
    assert on(client, lambda: None) is None
    events = [e["message"] for e in s2.events(TAG, s2.since)]
    assert any(m == "s1 died holding it; taking it over (priority 10)" for m in events), events

    faults.recover(lab.node("s1"))  # cables back, daemon restarted
    if switchback == "intelligent":
        assert holders([s1, s2], VIP) == ["s2"], story(s1, s2)  # s1 came back without the VIP
        assert any("s2 holds it now" in e["message"] for e in s1.events(TAG, s1.since))
    else:
        waiting = wait_until(
            lambda: next(
                (e["message"] for e in s2.events(TAG, s2.since) if "to be stable" in e["message"]),
                None,
            ),
            5,
            message="s2 waits SWITCHBACK_DELAY for s1 to be stable",
        )
        assert "SWITCHBACK_DELAY=5s" in waiting
        assert holders([s1, s2], VIP) == ["s2"]  # not before s1 has been up 5 s
        wait_until(
            lambda: holders([s1, s2], VIP) == ["s1"], 10, message="automatic switchback to s1"
        )
        assert any("automatic switchback to s1" in e["message"] for e in s2.events(TAG, s2.since))
    assert probe.ping(client, VIP) is not None


def test_one_comm_path_cut_changes_nothing_and_recovers(
    pair: tuple[LabServer, LabServer], lab: Topology
) -> None:
    s1, s2 = pair
    vip_with_backup(s1)
    faults.unplug(lab.node("s1"), "eth1")

    def path_states(server: LabServer) -> dict[str, str]:
        peer = next(x for x in server.status()["servers"] if not x["local"])
        return {p["remote"]: p["state"] for p in peer["comm_paths"]}

    wait_until(
        lambda: path_states(s2) == {"198.18.0.11": "up", "198.18.1.11": "down"},
        3,
        message="eth1 path down",
    )
    assert all(x["alive"] for x in s2.status()["servers"])
    assert holders([s1, s2], VIP) == ["s1"]
    assert not [e for e in s2.events(TAG, s2.since) if e["kind"] == "failover"]
    faults.plug(lab.node("s1"), "eth1")
    wait_until(
        lambda: path_states(s2) == {"198.18.0.11": "up", "198.18.1.11": "up"},
        5,
        message="eth1 path back",
    )


def test_every_path_cut_with_the_lan_up_the_unique_check_prevents_a_takeover(
    pair: tuple[LabServer, LabServer], lab: Topology
) -> None:
    s1, s2 = pair
    vip_with_backup(s1)
    with faults.comm_paths_cut(lab.node("s1"), "198.18.0.12"):
        wait_until(
            lambda: not any(x["alive"] for x in s2.status()["servers"] if not x["local"]),
            5,
            message="s2 sees s1 dead",
        )
        wait_until(
            lambda: any(e["kind"] == "not-taken" for e in s2.events(TAG, s2.since)),
            5,
            message="takeover refused",
        )
        assert holders([s1, s2], VIP) == ["s1"]
        assert probe.ping(lab.node("client"), VIP) is not None
        shown = s2.json("show", TAG)
        assert shown["state"] == "OSU"
        assert (
            "198.18.0.50 is already in use on the network (answered by 02:49:4b:00:00:0b)"
            in shown["reason"]
        )
        assert any(
            "s1 is dead: every comm path is down" in e["message"] for e in s2.events(after=s2.since)
        )
    wait_until(lambda: all(x["alive"] for x in s2.status()["servers"]), 5, message="paths back")
    assert holders([s1, s2], VIP) == ["s1"]
