"""Failover, hand-over, switchback and quorum with real engines over a fake network and a
fake clock: the cluster's decisions end to end, in milliseconds (no namespaces, no sleeps)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ipkeeper.testing.fakes import ComponentCluster

MAJORITY = "QUORUM=majority\nQUORUM_RELEASE=2\nQUORUM_GRACE=1\n"


@pytest.mark.asyncio
async def test_the_best_live_server_takes_over_from_a_dead_holder(pair: ComponentCluster) -> None:
    assert pair.holders("vip") == ["s1"]
    pair.kill("s1")
    await pair.settle()
    # Only s1's daemon died: its "address" still answers, so s2 may not take it.
    assert pair.holders("vip") == ["s1"]
    assert pair.state("s2", "vip") == "OSU"
    pair.network.active["s1"].clear()  # now the address is gone too
    pair.clock.advance(0.5)  # the back-off after the refused try
    await pair.settle()
    assert pair.holders("vip") == ["s2"] and pair.state("s2", "vip") == "ISP"
    assert "s1 died holding it; taking it over (priority 10)" in pair.events("s2", "failover")


@pytest.mark.asyncio
async def test_back_off_after_a_refused_takeover_follows_the_clock(
    pair: ComponentCluster,
) -> None:
    pair.kill("s1")
    await pair.settle()
    tries = pair.events("s2", "not-taken")
    pair.clock.advance(0.4)  # less than the first back-off (0.5 s): no new try
    await pair.settle()
    assert pair.events("s2", "not-taken") == tries
    pair.clock.advance(0.2)
    await pair.settle()
    assert len(pair.events("s2", "not-taken")) >= len(tries)  # tried again (coalesced rows)
    waits = [m for m in pair.events("s2", "failover") if "try 2 in" in m]
    assert waits, pair.events("s2", "failover")


@pytest.mark.asyncio
async def test_a_failure_the_holder_cannot_repair_is_handed_to_the_next_server(
    pair: ComponentCluster,
) -> None:
    s1 = pair.members["s1"]
    rid = s1.engine.repo.resource_by_tag("vip")
    assert rid is not None
    await s1.failover.local_failure(rid.id, {rid.id}, "check failed")
    await pair.settle()
    assert pair.holders("vip") == ["s2"]
    assert pair.state("s1", "vip") == "OSF" and pair.state("s2", "vip") == "ISP"


@pytest.mark.asyncio
async def test_automatic_switchback_when_the_better_server_rejoins(tmp_path: Path) -> None:
    cluster = await ComponentCluster.start(tmp_path, ["s1", "s2"])
    cluster.define("vip", {"s1": 1, "s2": 10}, switchback="automatic")
    await cluster.bring_up("s1", "vip")
    cluster.crash("s1")
    await cluster.settle()
    assert cluster.holders("vip") == ["s2"]
    cluster.clock.advance(5)
    await cluster.restart("s1")
    # SWITCHBACK_DELAY (5 s): s1 must stay up that long first, and s2 says so.
    assert cluster.holders("vip") == ["s2"]
    assert any("for s1 to be stable before switching back" in m for m in cluster.events("s2"))
    cluster.clock.advance(5)
    await cluster.settle()
    assert cluster.holders("vip") == ["s1"]
    assert any("automatic switchback to s1" in m for m in cluster.events("s2", "switchback"))
    await cluster.close()


@pytest.mark.asyncio
async def test_a_cut_off_holder_gives_up_before_the_majority_takes_over(tmp_path: Path) -> None:
    cluster = await ComponentCluster.start(tmp_path, ["s1", "s2", "s3"], tunables=MAJORITY)
    cluster.define("vip", {"s1": 1, "s2": 10, "s3": 20})
    await cluster.bring_up("s1", "vip")
    cluster.partition("s1", "s2")
    cluster.partition("s1", "s3")
    await cluster.settle()
    # The majority waits QUORUM_RELEASE + QUORUM_GRACE; the minority keeps it until
    # QUORUM_RELEASE: never on both sides.
    assert cluster.holders("vip") == ["s1"]
    assert any("waiting 3.0s before taking it over" in m for m in cluster.events("s2"))
    cluster.clock.advance(2.0)
    await cluster.settle()
    assert cluster.holders("vip") == [] and cluster.state("s1", "vip") == "OSU"
    cluster.clock.advance(1.0)
    await cluster.settle()
    assert cluster.holders("vip") == ["s2"]
    await cluster.close()


@pytest.mark.asyncio
async def test_a_minority_takes_nothing_over(tmp_path: Path) -> None:
    cluster = await ComponentCluster.start(tmp_path, ["s1", "s2", "s3"], tunables=MAJORITY)
    cluster.define("vip", {"s1": 1, "s2": 10, "s3": 20})
    await cluster.bring_up("s2", "vip")
    # s1 is cut off from both; s2, the holder, dies soon after.
    cluster.partition("s1", "s2")
    cluster.partition("s1", "s3")
    cluster.crash("s2")
    cluster.clock.advance(10)
    await cluster.settle()
    assert cluster.state("s1", "vip") == "OSU"  # the best priority, but alone
    assert cluster.holders("vip") == []  # s3 sees 1 of 3 votes too
    cluster.heal("s1", "s3")
    cluster.clock.advance(3.1)
    await cluster.settle()
    assert cluster.holders("vip") == ["s1"]
    await cluster.close()


@pytest.mark.asyncio
async def test_a_partial_partition_takes_nothing_over_until_the_death_is_agreed(
    tmp_path: Path,
) -> None:
    # Issue 11, item 1: s1 and s2 cut from each other, both reaching s3. s2 counts two
    # of three votes and sees s1 dead, but s3 still sees s1: s1 keeps the VIP.
    cluster = await ComponentCluster.start(tmp_path, ["s1", "s2", "s3"], tunables=MAJORITY)
    cluster.define("vip", {"s1": 1, "s2": 10, "s3": 20})
    await cluster.bring_up("s1", "vip")
    cluster.partition("s1", "s2")
    for _ in range(4):
        cluster.clock.advance(2.0)
        await cluster.settle()
    assert cluster.holders("vip") == ["s1"] and cluster.state("s1", "vip") == "ISP"
    assert any("s3 does not agree (1 of 3 votes)" in m for m in cluster.events("s2"))
    # Then s1 is cut from s3 too: now s3 agrees, and the takeover goes ahead (after the
    # majority's fencing wait, by which time s1, alone, has given the VIP up).
    cluster.partition("s1", "s3")
    for _ in range(3):
        cluster.clock.advance(2.0)
        await cluster.settle()
    assert cluster.holders("vip") == ["s2"]
    await cluster.close()


@pytest.mark.asyncio
async def test_a_link_down_from_an_earlier_time_in_service_is_forgotten(
    pair: ComponentCluster,
) -> None:
    # LINK_DEBOUNCE counts from the first failed check of a link-down. A stale start,
    # left from a link-down before the resource moved away, let the next link-down after
    # it came back act at once (link failovers of 46 ms after a first one of 348 ms).
    monitor = pair.members["s1"].monitor
    rid = "id-vip"
    monitor.link_down[rid] = 0.0  # a link-down seen while it was in service here
    engine = pair.members["s1"].engine
    await engine.take_down({rid}, "moved away")
    assert rid not in monitor.link_down
