"""Issue 11, item 8: nobody on the subnet answers pings any more (the router, and every
other host, drop echo requests). Every server fails the same check, so moving cannot
help: the VIP stays on its holder, in service unprotected (ISU, an alarm), and is
protected again (ISP) when the router answers again. It used to move s1 -> s2 -> back
until both servers were OSF and nobody held it."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from ipkeeper.lab import control, faults
from ipkeeper.lab.topology import Topology
from ipkeeper.testing import wait_until
from ipkeeper.testing.labtools import LabServer, story
from ipkeeper.testing.ownership import OwnershipSampler

pytestmark = pytest.mark.lab

VIP = "198.18.0.50"
TAG = f"ip-{VIP}"
KEPT = "kept in service unprotected: no responder on 198.18.0.0/24 from any server (s1, s2)"
FAST_PINGS = {"IP_PINGTIME": 0.2, "IP_PINGTRIES": 2}  # a failed test in 0.6 s, not 4 s


def metric(server: LabServer, name: str) -> float:
    transport = httpx.HTTPTransport(uds=str(server.socket))
    with httpx.Client(transport=transport, base_url="http://ipkeeperd", timeout=30) as http:
        text = http.get("/metrics").text
    return float(next(line.split()[-1] for line in text.splitlines() if line.startswith(name)))


def wait_telling(
    predicate: Callable[[], bool], timeout: float, what: str, *servers: LabServer
) -> None:
    """wait_until, with what happened meanwhile on `servers` when it times out."""
    try:
        wait_until(predicate, timeout, message=what)
    except TimeoutError as exc:
        logs = [control.lab_dir() / f"ipkeeperd-{s.name}.log" for s in servers]
        tails = "\n".join(line for log in logs for line in log.read_text().splitlines()[-15:])
        raise AssertionError(f"{exc}; {story(*servers)}\n{tails}") from None


def reason(server: LabServer, tag: str) -> str:
    for res in server.status()["resources"]:
        if res["tag"] == tag:
            return str(res["servers"][server.name].get("reason") or "")
    return ""


def test_nobody_answering_on_the_subnet_keeps_the_vip_where_it_is_and_says_so(
    pair: tuple[LabServer, LabServer], lab: Topology
) -> None:
    s1, s2 = pair
    for server in pair:
        server.tune(**FAST_PINGS)
    s1.json("create", "ip", "--address", VIP, "--netmask", "24")
    s1.json("extend", TAG, "--target", "s2")
    wait_until(lambda: s1.state(TAG) == "ISP", 10, message="in service on s1")
    namespaces = {"s1": lab.node("s1").namespace, "s2": lab.node("s2").namespace}
    with OwnershipSampler(namespaces, [VIP]) as sampler:
        with faults.no_responder(lab):
            wait_telling(
                lambda: s1.state(TAG) == "ISU", 15, "kept on s1 unprotected (bound: 15 s)", s1, s2
            )
            assert reason(s1, TAG) == KEPT
            assert s1.status()["unprotected"] == [{"tag": TAG, "reason": KEPT}]
            assert metric(s1, "ipkeeper_unprotected_resources") == 1.0
            assert s1.cli("status").returncode & 32  # an instance unprotected
            time.sleep(4)  # four check intervals: what would move it, has (not a synchronisation)
            assert s1.state(TAG) == "ISU" and s2.state(TAG) == "OSU"
        wait_telling(
            lambda: s1.state(TAG) == "ISP",
            5,
            "protected again (bound: 5 s, a few check intervals)",
            s1,
            s2,
        )
    # Never on two servers, never on none: it stayed on s1 the whole time (bound: 0 s).
    timeline = sampler.story(VIP)
    assert sampler.longest_dual(VIP) == 0.0, timeline
    assert sampler.longest_absence(VIP) == 0.0, timeline
    assert {who for _, who in sampler.timelines[VIP].changes} == {frozenset({"s1"})}, timeline
    assert sampler.samples > 100
    said = [e["message"] for e in s1.events(TAG, s1.since)]
    assert f"ISU: {KEPT}" in said, said
    assert any(m.startswith("ISP: responder on 198.18.0.0/24 answers again") for m in said), said
    assert metric(s1, "ipkeeper_unprotected_resources") == 0.0
    assert s1.status()["unprotected"] == []
    moved = [e["message"] for e in s2.events(TAG, s2.since) if e["kind"] == "failover"]
    assert moved == [], moved
