"""Faults from the campaign of issue 11 that the new core answers (items 2, 3 and 10's
switchback hold-down), each with real traffic in the lab."""

from __future__ import annotations

import os
import signal
import time

import pytest

from ipkeeper.lab import daemons, faults, probe
from ipkeeper.lab.topology import Topology
from ipkeeper.testing import wait_until
from ipkeeper.testing.labtools import LabServer, holders, neighbour_mac

pytestmark = pytest.mark.lab

VIP = "198.18.0.50"
TAG = f"ip-{VIP}"


def vip_with_backup(s1: LabServer, *create: str) -> None:
    s1.json("create", "ip", "--address", VIP, "--netmask", "24", *create)
    s1.json("extend", TAG, "--target", "s2")


def mac_of(lab: Topology, server: str) -> str:
    return lab.node(server).port("eth0").mac


def test_a_healed_split_brain_is_announced_again_by_the_winner(
    pair: tuple[LabServer, LabServer], lab: Topology
) -> None:
    # Item 2: with the unique-address check off, cut comm paths make a dual; when
    # they heal the worse priority gives the VIP up, and the winner must announce
    # it, or the client and the router keep sending to the loser's MAC.
    s1, s2 = pair
    vip_with_backup(s1)
    s2.tune(NOIPUNIQUE=1)
    client = lab.node("client")
    assert probe.ping(client, VIP) is not None  # the client's cache has s1's MAC
    assert neighbour_mac(client, VIP) == mac_of(lab, "s1")
    try:
        with faults.comm_paths_cut(lab.node("s1"), "198.18.0.12"):
            wait_until(lambda: s2.has_address(VIP), 10, message="s2 takes it: a dual")
            wait_until(
                lambda: neighbour_mac(client, VIP) == mac_of(lab, "s2"),
                5,
                message="the client follows s2's announcement",
            )
        wait_until(lambda: holders([s1, s2], VIP) == ["s1"], 10, message="the dual resolved")
        wait_until(
            lambda: neighbour_mac(client, VIP) == mac_of(lab, "s1"),
            5,
            message="s1 announced it again",
        )
        assert any(
            "announc" in e["message"] and e.get("tag") == TAG for e in s1.events(after=s1.since)
        ), [e["message"] for e in s1.events(after=s1.since)]
        assert s1.state(TAG) == "ISP"
        time.sleep(2)  # a few check intervals: nothing may move it now (not a synchronisation)
        assert holders([s1, s2], VIP) == ["s1"] and s1.state(TAG) == "ISP"
    finally:
        s2.tune()


def test_a_backup_resumed_from_a_pause_does_not_act_on_the_time_it_slept(
    pair: tuple[LabServer, LabServer], lab: Topology
) -> None:
    # Item 3: the heartbeat thread judges silence on the time it was running, so a
    # SIGSTOPped backup does not, once resumed, call its live peer dead.
    s1, s2 = pair
    vip_with_backup(s1)
    s2.tune(NOIPUNIQUE=1)  # a wrong takeover would then show as a dual
    pid = daemons.pid(lab.node("s2"))
    assert pid is not None
    try:
        for _ in range(3):
            mark = s2.mark()
            os.kill(pid, signal.SIGSTOP)
            time.sleep(2.0)  # the pause itself (not a synchronisation)
            os.kill(pid, signal.SIGCONT)
            wait_until(lambda: s2.status() is not None, 10, message="s2 answers again")
            time.sleep(1.0)  # what a resumed daemon would do wrongly, it does at once
            wrong = [
                e["message"]
                for e in s2.events(after=mark)
                if e["kind"] in ("membership", "failover") and "s1" in e["message"]
            ]
            assert wrong == []
            assert holders([s1, s2], VIP) == ["s1"]
    finally:
        os.kill(pid, signal.SIGCONT)
        s2.tune()
