"""Issue 11, item 9: a duplicate appears while in service.

A rogue host on the LAN (the lab's router, so that the client's neighbour
cache is the witness) takes the VIP and announces it (gratuitous ARPs; for
IPv6 unsolicited neighbour advertisements) every 0.5 s for ROGUE_SECONDS,
longer than the bring-up's second burst of announcements (5 s after it), so
that when the rogue leaves the client's cache still points at it. The holder
must report a conflict naming the rogue's MAC, defend the address (RFC 5227
section 2.4), keep it (never hand it to the backup, whose unique-address
check would refuse it), and once the rogue is gone announce it again, so that
the client's cache points at the holder and its pings are answered: within
DEFEND_INTERVAL after the rogue's last frame plus RECLAIM_SLACK.
"""

from __future__ import annotations

import time

import httpx
import pytest

from ipkeeper.lab import faults, probe
from ipkeeper.lab.topology import Topology
from ipkeeper.testing import wait_until
from ipkeeper.testing.labtools import LabServer, neighbour_mac
from ipkeeper.testing.ownership import OwnershipSampler

pytestmark = pytest.mark.lab

RECLAIM_SLACK = 4.0  # the listener's wake-up, the announcement, the client's cache
ROGUE_SECONDS = 8.0


def rogue_case(
    pair: tuple[LabServer, LabServer], lab: Topology, vip: str, netmask: str, interval: float
) -> float:
    """The scenario of the module docstring for `vip` with DEFEND_INTERVAL `interval`;
    the seconds from the rogue's last frame to the client's cache on s1 again."""
    s1, s2 = pair
    tag = f"ip-{vip}"
    s1.json("create", "ip", "--address", vip, "--netmask", netmask)
    s1.json("extend", tag, "--target", "s2")
    client, rogue = lab.node("client"), lab.node("router")
    s1_mac = lab.node("s1").port("eth0").mac
    since = s1.mark()
    wait_until(lambda: probe.ping(client, vip) is not None, 5, message="the client reaches it")
    assert neighbour_mac(client, vip) == s1_mac
    namespaces = {name: lab.node(name).namespace for name in ("s1", "s2")}
    with OwnershipSampler(namespaces, [vip]) as sampler:
        with faults.rogue_duplicate(rogue, vip, seconds=ROGUE_SECONDS, interval=0.5) as sent:
            wait_until(
                lambda: any(
                    "address conflict:" in e["message"] and sent.mac in e["message"]
                    for e in s1.events(tag, after=since)
                ),
                5,
                message="s1 reports the conflict, naming the rogue's MAC",
            )
            wait_until(
                lambda: neighbour_mac(client, vip) == sent.mac,
                5,
                message="the rogue turned the client's cache (the fault is real)",
            )
            wait_until(lambda: s1.state(tag) == "ISU", 5, message="s1 keeps it, ISU")
            reason = next(
                r["servers"]["s1"]["reason"] for r in s1.status()["resources"] if r["tag"] == tag
            )
            assert "address conflict with" in reason and "defending" in reason, reason
        # Nothing of s1's left since the rogue's last frame (one defence per interval, the
        # bring-up's bursts long over): what turns the client back is the reclaim.
        assert neighbour_mac(client, vip) == sent.mac
        wait_until(
            lambda: neighbour_mac(client, vip) == s1_mac,
            interval + RECLAIM_SLACK + (sent.left - sent.last),
            message="s1 reclaimed the address: the client's cache points at it again",
        )
        reclaimed_after = time.monotonic() - sent.last
        wait_until(lambda: s1.state(tag) == "ISP", 10, message="back to ISP")
        reply = probe.ping(client, vip, timeout=2.0)
    messages = [e["message"] for e in s1.events(tag, after=since)]
    story = sampler.story(vip)
    assert reply is not None, messages
    assert neighbour_mac(client, vip) == s1_mac
    assert [who for _, who in sampler.timelines[vip].changes] == [frozenset({"s1"})], story
    assert sampler.longest_absence(vip) == 0.0 and sampler.longest_dual(vip) == 0.0, story
    conflicts = [m for m in messages if m.startswith("address conflict:")]
    assert len(conflicts) == 1, messages  # once per conflict, not per frame
    assert any("address conflict ended" in m and "reclaimed" in m for m in messages), messages
    assert s2.state(tag) == "OSU"
    assert sent.sent >= 5
    assert metric(s1, f'ipkeeper_address_conflicts_total{{tag="{tag}"}}') == 1.0
    assert metric(s1, "ipkeeper_address_conflicts_active") == 0.0
    s1.json("delete", tag)
    print(
        f"{vip}: reclaimed {reclaimed_after:.1f}s after the rogue's last frame ({sent.sent} sent)"
    )
    return reclaimed_after


def test_a_rogue_duplicate_is_reported_defended_kept_and_reclaimed_after_it_leaves(
    pair: tuple[LabServer, LabServer], lab: Topology
) -> None:
    rogue_case(pair, lab, "198.18.0.50", "24", 10.0)  # DEFEND_INTERVAL's default


def test_an_ipv6_rogue_duplicate_is_reclaimed_after_a_shorter_defend_interval(
    pair: tuple[LabServer, LabServer], lab: Topology
) -> None:
    s1, _ = pair
    s1.tune(DEFEND_INTERVAL=3)
    try:
        rogue_case(pair, lab, "2001:db8::50", "64", 3.0)
    finally:
        s1.tune()


def metric(server: LabServer, series: str) -> float | None:
    """The value of one series of `server`'s /metrics, as written there."""
    transport = httpx.HTTPTransport(uds=str(server.socket))
    with httpx.Client(transport=transport, base_url="http://ipkeeperd", timeout=30) as http:
        text = http.get("/metrics").text
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return None
