"""Issue 11, item 1: a partial partition under QUORUM=majority. s1 and s2 cannot
reach each other at all (layer 2: no heartbeat, no ARP), both still reach s3. s2
counts two of three votes and sees s1 dead, but s3 still sees s1: a takeover by s2
would put the VIP on two servers (its unique-address probe cannot reach s1). It must
wait for the voters it counts to agree, and s1 keeps the VIP throughout."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from ipkeeper.lab import faults, probe
from ipkeeper.lab.topology import Topology
from ipkeeper.testing import wait_until
from ipkeeper.testing.labtools import LabServer, holders
from ipkeeper.testing.ownership import OwnershipSampler
from tests.lab.test_cluster_quorum import three_servers

pytestmark = pytest.mark.lab

VIP = "198.18.0.64"
TAG = f"ip-{VIP}"
CUT = 8.0  # seconds: well past QUORUM_RELEASE + QUORUM_GRACE (1 + 1 s) and the dead time


@pytest.fixture
def trio() -> Iterator[tuple[Topology, dict[str, LabServer]]]:
    yield from three_servers(frozenset())


def test_a_partial_partition_never_puts_the_vip_on_two_servers(
    trio: tuple[Topology, dict[str, LabServer]],
) -> None:
    lab, s = trio
    s["s1"].json("create", "ip", "--address", VIP, "--netmask", "24")
    s["s1"].json("extend", TAG, "--target", "s2", "--target-priority", "10")
    s["s1"].json("extend", TAG, "--target", "s3", "--target-priority", "20")
    mark2 = s["s2"].mark()
    spaces = {n.name: n.namespace for n in lab.servers}
    with OwnershipSampler(spaces, [VIP]) as sampler:
        with faults.partial_partition(lab.node("s1"), lab.node("s2")):
            wait_until(
                lambda: (
                    not next(x["alive"] for x in s["s2"].status()["servers"] if x["name"] == "s1")
                ),
                10,
                message="s2 sees s1 dead",
            )
            time.sleep(CUT)  # the partition itself (not a synchronisation)
            assert probe.ping(lab.node("client"), VIP) is not None
        wait_until(
            lambda: all(x["alive"] for x in s["s2"].status()["servers"]), 10, message="healed"
        )
        time.sleep(1.0)  # what a wrong decision after healing would do, it does at once
    story = sampler.story(VIP)
    assert sampler.samples > 100, story
    assert sampler.longest_dual(VIP) == 0.0, story
    assert sampler.longest_absence(VIP) == 0.0, story
    assert holders(list(s.values()), VIP) == ["s1"]
    waits = [e["message"] for e in s["s2"].events(TAG, mark2)]
    assert any("s3 does not agree" in m for m in waits), waits
    assert s["s1"].state(TAG) == "ISP" and s["s2"].state(TAG) == "OSU"
