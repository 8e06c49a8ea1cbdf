"""Faults from the campaign of issue 11 that the new core answers (items 2, 3, 5, 6, 10
and 11), each with real traffic in the lab and the 10 ms ownership sampler watching
who holds the VIP throughout."""

from __future__ import annotations

import os
import signal
import time

import pytest

from ipkeeper.lab import daemons, faults, probe
from ipkeeper.lab.topology import Topology
from ipkeeper.testing import wait_until
from ipkeeper.testing.labtools import LabServer, holders, neighbour_mac
from ipkeeper.testing.ownership import OwnershipSampler

pytestmark = pytest.mark.lab

VIP = "198.18.0.50"
TAG = f"ip-{VIP}"


def vip_with_backup(s1: LabServer, *create: str) -> None:
    s1.json("create", "ip", "--address", VIP, "--netmask", "24", *create)
    s1.json("extend", TAG, "--target", "s2")


def mac_of(lab: Topology, server: str) -> str:
    return lab.node(server).port("eth0").mac


def sampler(lab: Topology) -> OwnershipSampler:
    """Who holds the VIP on s1 and s2, every 10 ms, from now on."""
    return OwnershipSampler({n.name: n.namespace for n in lab.servers}, [VIP]).start()


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
    watch = sampler(lab)
    try:
        with faults.comm_paths_cut(lab.node("s1"), "198.18.0.12"):
            wait_until(lambda: s2.has_address(VIP), 10, message="s2 takes it: a dual")
            wait_until(
                lambda: neighbour_mac(client, VIP) == mac_of(lab, "s2"),
                5,
                message="the client follows s2's announcement",
            )
        healed = time.monotonic()
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
        watch.stop()
        s2.tune()
    # The deliberate dual (no unique check, comm paths cut) ends within 3 s of the heal,
    # toward the better priority, and the VIP is never on nobody.
    assert watch.timelines[VIP].changes[-1][1] == {"s1"}, watch.story(VIP)
    ends = [at for at, who in watch.timelines[VIP].changes if at >= healed and who == {"s1"}]
    assert ends and ends[0] - healed < 3.0, watch.story(VIP)
    assert watch.longest_absence(VIP) == 0.0, watch.story(VIP)


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
    watch = sampler(lab)
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
        watch.stop()
        os.kill(pid, signal.SIGCONT)
        s2.tune()
    assert watch.longest_dual(VIP) == 0.0 and watch.longest_absence(VIP) == 0.0, watch.story(VIP)


def test_a_flapping_lan_cable_moves_nothing_and_a_cable_pulled_for_good_still_fails_over(
    pair: tuple[LabServer, LabServer], lab: Topology
) -> None:
    # Item 10: links down for 50-150 ms, again and again, are shorter than
    # LINK_DEBOUNCE (0.3 s) and trigger no recovery and no failover.
    s1, s2 = pair
    vip_with_backup(s1)
    s1_node = lab.node("s1")
    watch = sampler(lab)
    for down in (0.05, 0.1, 0.15) * 4:
        faults.set_switch_port(s1_node, "eth0", False)
        time.sleep(down)  # the flap itself (not a synchronisation)
        faults.set_switch_port(s1_node, "eth0", True)
        time.sleep(0.3)
    time.sleep(1.5)  # the debounce and a check interval: what would move, has moved
    watch.stop()
    assert watch.timelines[VIP].changes[-1][1] == {"s1"}, watch.story(VIP)
    assert len(watch.timelines[VIP].changes) == 1, watch.story(VIP)  # never moved, never gone
    assert holders([s1, s2], VIP) == ["s1"] and s1.state(TAG) == "ISP"
    moved = [e["message"] for e in s1.events(after=s1.since) if e["kind"] in ("failover",)]
    assert moved == []
    flaps = [e for e in s1.events(TAG, s1.since) if "LINK_DEBOUNCE" in e["message"]]
    assert flaps, [e["message"] for e in s1.events(after=s1.since)]
    # A cable that stays out is still a failover, LINK_DEBOUNCE later.
    faults.set_switch_port(s1_node, "eth0", False)
    try:
        wait_until(lambda: s2.state(TAG) == "ISP", 10, message="s2 takes over")
    finally:
        faults.set_switch_port(s1_node, "eth0", True)


def test_a_holder_whose_database_was_wiped_keeps_the_vip_after_it_restarts(
    pair: tuple[LabServer, LabServer], lab: Topology
) -> None:
    # Item 6: s2 holds the VIP; its store is lost; it restarts, learns the
    # definitions from s1 again, and must keep what is up rather than take it down.
    s1, s2 = pair
    vip_with_backup(s1)
    s1.json("in-service", TAG, "--server", "s2")
    wait_until(lambda: holders([s1, s2], VIP) == ["s2"], 10, message="on s2")
    node = lab.node("s2")
    watch = sampler(lab)
    daemons.kill(node)
    state = daemons.server_dir(node) / "state"
    for leftover in state.glob("ipkeeper.db*"):
        leftover.unlink()
    daemons.start(node)
    wait_until(lambda: s2.state(TAG) == "ISP", 15, message="s2 adopted it")
    watch.stop()
    assert len(watch.timelines[VIP].changes) == 1, watch.story(VIP)  # on s2 throughout
    assert holders([s1, s2], VIP) == ["s2"]
    assert any("store was rebuilt" in e["message"] for e in s2.events(TAG))


def test_a_standby_restarted_just_after_the_holder_crashed_takes_it_over(
    pair: tuple[LabServer, LabServer], lab: Topology
) -> None:
    # Item 5: s1 crashes and s2's daemon dies 10-40 ms later; restarted, s2 has never
    # heard from s1 in its new life and knows nothing of what s1 held. Nobody answers
    # for the VIP, so it is taken over (the unique-address check would refuse if it
    # still answered somewhere).
    s1, s2 = pair
    vip_with_backup(s1)
    watch = sampler(lab)
    crashed = time.monotonic()
    faults.crash(lab.node("s1"))
    time.sleep(0.02)  # within the dead time: s2 has not judged s1 yet (the fault itself)
    daemons.kill(lab.node("s2"))
    daemons.start(lab.node("s2"))
    wait_until(lambda: s2.state(TAG) == "ISP", 10, message="s2 takes it over (bound: 10 s)")
    watch.stop()
    # (The crashed s1 keeps its address configured, unreachable: only s2's side counts.)
    taken = [at for at, who in watch.timelines[VIP].changes if "s2" in who]
    assert taken and taken[0] - crashed < 10.0, watch.story(VIP)
    assert holders([s2], VIP) == ["s2"]
    reasons = [e["message"] for e in s2.events(TAG, s2.since)]
    assert any("not heard from since this server started" in m for m in reasons), reasons
    # An administrator's out-of-service survives the same restart.
    s2.json("out-of-service", TAG)
    daemons.kill(lab.node("s2"))
    daemons.start(lab.node("s2"))
    time.sleep(2)  # a restart and its first decisions (what would come back, has)
    assert s2.state(TAG) == "OSU" and not s2.has_address(VIP)


def test_a_server_isolated_then_restarted_gets_its_vip_back_by_automatic_switchback(
    pair: tuple[LabServer, LabServer], lab: Topology
) -> None:
    # Item 11: s1 loses every cable; its checks fail and it gives the VIP up (OSF)
    # while s2 takes it over. Restarted with its network back, s1 is eligible again.
    s1, s2 = pair
    vip_with_backup(s1, "--switchback", "automatic")
    node = lab.node("s1")
    faults.unplug(node)
    wait_until(lambda: s2.state(TAG) == "ISP", 15, message="s2 takes over")
    wait_until(lambda: s1.state(TAG, "s1") == "OSF", 15, message="s1 gives it up")
    faults.plug(node)
    daemons.kill(node)
    watch = sampler(lab)
    daemons.start(node)
    wait_until(
        lambda: holders([s1, s2], VIP) == ["s1"], 20, message="switched back to s1 (bound: 20 s)"
    )
    watch.stop()
    assert watch.longest_dual(VIP) == 0.0, watch.story(VIP)
    assert watch.longest_absence(VIP) < 1.0, watch.story(VIP)  # the switchback's own gap
    assert any("switchback to s1" in e["message"] for e in s2.events(TAG, s2.since))
