"""Issue 11, item 8: nobody on the subnet answers. Real engines, monitors and failover
loops over the fake network: the holder asks the others to test the subnet from their
side, hands over only to one that reaches a responder, and otherwise keeps the VIP in
service unprotected (ISU) until a responder answers again."""

from __future__ import annotations

from pathlib import Path

import pytest

from ipkeeper.engine import noresponder
from ipkeeper.engine.views import status
from ipkeeper.testing.fakes import ComponentCluster

KEPT = "kept in service unprotected: no responder on 198.18.0.0/24 from any server (s1, s2)"


def reasons(cluster: ComponentCluster, server: str) -> list[str]:
    return cluster.events(server)


@pytest.mark.asyncio
async def test_nobody_answers_from_any_server_so_the_vip_stays_here_unprotected(
    pair: ComponentCluster,
) -> None:
    pair.network.silent = {"s1", "s2"}  # the router stopped answering pings
    await pair.check("s1")
    assert pair.holders("vip") == ["s1"]
    assert pair.state("s1", "vip") == "ISU" and pair.state("s2", "vip") == "OSU"
    assert f"ISU: {KEPT}" in reasons(pair, "s1")
    seen = status(pair.members["s1"].engine)
    assert seen["unprotected"] == [{"tag": "vip", "reason": KEPT}]
    # Checked on every interval while kept; nothing moves, nothing is said again.
    told = len(reasons(pair, "s1"))
    for _ in range(3):
        await pair.check("s1")
    assert pair.holders("vip") == ["s1"] and pair.state("s1", "vip") == "ISU"
    assert len(reasons(pair, "s1")) == told
    # The router answers again: protected again, and said so.
    pair.network.silent = set()
    await pair.check("s1")
    assert pair.state("s1", "vip") == "ISP" and pair.holders("vip") == ["s1"]
    assert any(
        m.startswith("ISP: responder on 198.18.0.0/24 answers again: protected")
        for m in reasons(pair, "s1")
    ), reasons(pair, "s1")
    assert status(pair.members["s1"].engine)["unprotected"] == []
    assert pair.members["s1"].engine.unprotected == {}


@pytest.mark.asyncio
async def test_the_hierarchy_goes_only_to_a_server_that_reaches_a_responder(
    tmp_path: Path,
) -> None:
    cluster = await ComponentCluster.start(tmp_path, ["s1", "s2", "s3"])
    cluster.define("vip", {"s1": 1, "s2": 10, "s3": 20})
    await cluster.bring_up("s1", "vip")
    try:
        cluster.network.silent = {"s1", "s2"}  # s2 has the better priority but no responder
        await cluster.check("s1")
        assert cluster.holders("vip") == ["s3"]
        assert cluster.state("s1", "vip") == "OSF" and cluster.state("s2", "vip") == "OSU"
        assert any(
            "no responder on 198.18.0.0/24 from s1, but s3 reaches one: failing over to s3" in m
            for m in cluster.events("s1", "failover")
        ), cluster.events("s1", "failover")
    finally:
        await cluster.close()


@pytest.mark.asyncio
async def test_a_server_that_cannot_tell_is_not_moved_to_and_the_reason_says_so(
    pair: ComponentCluster,
) -> None:
    pair.network.silent = {"s1"}
    pair.network.unsure = {"s2"}  # no address of its own on the subnet
    await pair.check("s1")
    assert pair.holders("vip") == ["s1"] and pair.state("s1", "vip") == "ISU"
    reason = pair.members["s1"].engine.unprotected[
        pair.members["s1"].engine.repo.resource_by_tag("vip").id
    ]  # type: ignore[union-attr]
    assert reason.startswith("kept in service unprotected: no responder on 198.18.0.0/24 from s1")
    assert "s2 cannot tell: no address of 198.18.0.0/24 here to test from" in reason


@pytest.mark.asyncio
async def test_a_kept_vip_moves_once_another_server_reaches_a_responder(
    pair: ComponentCluster,
) -> None:
    pair.network.silent = {"s1", "s2"}
    await pair.check("s1")
    assert pair.state("s1", "vip") == "ISU"
    pair.network.silent = {"s1"}  # now only s1's side is cut off from the responder
    await pair.check("s1")  # asked a moment ago: not asked again yet
    assert pair.holders("vip") == ["s1"]
    pair.clock.advance(noresponder.REASK_EVERY)
    await pair.check("s1")
    assert pair.holders("vip") == ["s2"] and pair.state("s2", "vip") == "ISP"
    assert pair.state("s1", "vip") == "OSF"
    assert pair.members["s1"].engine.unprotected == {}


@pytest.mark.asyncio
async def test_no_responder_failover_is_the_old_behaviour(tmp_path: Path) -> None:
    cluster = await ComponentCluster.start(
        tmp_path, ["s1", "s2"], tunables="NO_RESPONDER=failover\n"
    )
    cluster.define("vip", {"s1": 1, "s2": 10})
    await cluster.bring_up("s1", "vip")
    try:
        cluster.network.silent = {"s1", "s2"}
        await cluster.check("s1")
        # Treated as any failure: given up here, and s2's bring-up fails the same check.
        assert cluster.holders("vip") == []
        assert cluster.state("s1", "vip") == "OSF"
        assert not any("kept in service" in m for m in cluster.events("s1"))
    finally:
        await cluster.close()


@pytest.mark.asyncio
async def test_a_different_failure_while_kept_is_handled_as_any_failure(
    pair: ComponentCluster,
) -> None:
    pair.network.silent = {"s1", "s2"}
    await pair.check("s1")
    assert pair.state("s1", "vip") == "ISU"
    pair.network.silent = set()
    pair.members["s1"].kit.failing["quick_check"] = {"vip"}  # the address went, say
    pair.members["s1"].kit.failing["restore"] = {"vip"}
    await pair.check("s1")
    assert pair.holders("vip") == ["s2"] and pair.state("s1", "vip") == "OSF"
    assert pair.members["s1"].engine.unprotected == {}
