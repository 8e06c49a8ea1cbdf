"""Issue 11, item 9: a duplicate appears while in service.

A rogue host on the LAN (the lab's router, so that the client's neighbour
cache is the witness) takes the VIP and sends gratuitous ARPs for it for a
few seconds. The holder must report a conflict naming the rogue's MAC, defend
the address (RFC 5227 section 2.4), keep it (never hand it to a backup whose
unique-address check would refuse it), and once the rogue is gone, announce
it again so that the client's cache points at the holder: within
DEFEND_INTERVAL (10 s) after the rogue's last frame plus RECLAIM_SLACK.
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

VIP = "198.18.0.50"
TAG = f"ip-{VIP}"
DEFEND_INTERVAL = 10.0  # the default
RECLAIM_SLACK = 4.0  # the listener's wake-up, the announcement, the client's cache


def test_a_rogue_duplicate_is_reported_defended_kept_and_reclaimed_after_it_leaves(
    pair: tuple[LabServer, LabServer], lab: Topology
) -> None:
    s1, s2 = pair
    s1.json("create", "ip", "--address", VIP, "--netmask", "24")
    s1.json("extend", TAG, "--target", "s2")
    client, rogue = lab.node("client"), lab.node("router")
    s1_mac = lab.node("s1").port("eth0").mac
    assert probe.ping(client, VIP) is not None
    assert neighbour_mac(client, VIP) == s1_mac
    namespaces = {name: lab.node(name).namespace for name in ("s1", "s2")}
    with OwnershipSampler(namespaces, [VIP]) as sampler:
        with faults.rogue_duplicate(rogue, VIP, seconds=5.0, interval=0.5) as sent:
            wait_until(
                lambda: any(
                    "address conflict:" in e["message"] and sent.mac in e["message"]
                    for e in s1.events(TAG, after=s1.since)
                ),
                5,
                message="s1 reports the conflict, naming the rogue's MAC",
            )
            wait_until(
                lambda: neighbour_mac(client, VIP) == sent.mac,
                5,
                message="the rogue turned the client's cache (the fault is real)",
            )
            wait_until(lambda: s1.state(TAG) == "ISU", 5, message="s1 keeps it, ISU")
        gone = sent.left
        reason = s1.status()["resources"][0]["servers"]["s1"]["reason"]
        assert "address conflict with" in reason and "defending" in reason, reason
        wait_until(
            lambda: neighbour_mac(client, VIP) == s1_mac,
            DEFEND_INTERVAL + RECLAIM_SLACK + (gone - sent.last),
            message="s1 reclaimed the address: the client's cache points at it again",
        )
        reclaimed_after = time.monotonic() - sent.last
        wait_until(lambda: s1.state(TAG) == "ISP", 10, message="back to ISP")
        reply = probe.ping(client, VIP, timeout=2.0)
    messages = [e["message"] for e in s1.events(TAG, after=s1.since)]
    story = sampler.story(VIP)
    assert reply is not None, messages
    assert neighbour_mac(client, VIP) == s1_mac
    assert [who for _, who in sampler.timelines[VIP].changes] == [frozenset({"s1"})], story
    assert sampler.longest_absence(VIP) == 0.0 and sampler.longest_dual(VIP) == 0.0, story
    assert any("address conflict ended" in m and "reclaimed" in m for m in messages), messages
    assert s2.state(TAG) == "OSU"
    assert sent.sent >= 5
    assert metric(s1, f'ipkeeper_address_conflicts_total{{tag="{TAG}"}}') == 1.0
    assert metric(s1, "ipkeeper_address_conflicts_active") == 0.0
    print(f"reclaimed {reclaimed_after:.1f}s after the rogue's last frame ({sent.sent} sent)")


def metric(server: LabServer, series: str) -> float | None:
    """The value of one series of `server`'s /metrics, as written there."""
    transport = httpx.HTTPTransport(uds=str(server.socket))
    with httpx.Client(transport=transport, base_url="http://ipkeeperd", timeout=30) as http:
        text = http.get("/metrics").text
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return None
