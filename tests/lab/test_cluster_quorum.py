"""Three servers. Quorum (R32) with three voters: the isolated server takes nothing
over and gives its VIP up; the others carry on. Also with two servers and a
witness. And a move (R24) that outlives the server that asked for it."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ipkeeper.lab import control, daemons, faults, probe
from ipkeeper.lab.topology import Topology
from ipkeeper.testing import wait_until
from ipkeeper.testing.labtools import LabServer, holders
from tests.conftest import App

pytestmark = pytest.mark.lab


def three_servers(witnesses: frozenset[str]) -> Iterator[tuple[Topology, dict[str, LabServer]]]:
    control.down()
    try:
        lab = control.up(3, daemons=False)
        daemons.write_configs(lab, witnesses)
        for node in lab.servers:
            LabServer(node).tune(QUORUM="majority", QUORUM_RELEASE=1)
        daemons.start_all(lab)
        servers = {n.name: LabServer(n) for n in lab.servers}
        for server in servers.values():
            wait_until(
                lambda s=server: all(x["alive"] for x in s.status()["servers"]),
                10,
                message="all joined",
            )
        yield lab, servers
    finally:
        control.down()


@pytest.fixture
def trio() -> Iterator[tuple[Topology, dict[str, LabServer]]]:
    yield from three_servers(frozenset())


def test_isolated_server_gives_up_and_takes_nothing(
    trio: tuple[Topology, dict[str, LabServer]],
) -> None:
    lab, s = trio
    # VIP A lives on s3 (backed by s1, s2); VIP B lives on s1 (backed by s2, s3).
    s["s3"].json("create", "ip", "--address", "198.18.0.60", "--netmask", "24")
    s["s3"].json("extend", "ip-198.18.0.60", "--target", "s1", "--target-priority", "10")
    s["s3"].json("extend", "ip-198.18.0.60", "--target", "s2", "--target-priority", "20")
    s["s1"].json("create", "ip", "--address", "198.18.0.61", "--netmask", "24")
    s["s1"].json("extend", "ip-198.18.0.61", "--target", "s2", "--target-priority", "10")
    s["s1"].json("extend", "ip-198.18.0.61", "--target", "s3", "--target-priority", "20")
    quorum = s["s3"].json("status")["quorum"]
    assert quorum["mode"] == "majority" and quorum["votes"] == 3 and quorum["has_quorum"]
    mark3 = s["s3"].mark()

    mark1 = s["s1"].mark()
    # With its cables out, s3's own checks would fail at once and release VIP A
    # before quorum matters; without the link and broadcast-ping steps only the
    # quorum rule makes it give the VIP up, as across a real partition.
    s["s3"].tune(QUORUM="majority", QUORUM_RELEASE=1, IP_NOLINKCHECK=1, NOBCASTPING=1)
    faults.unplug(lab.node("s3"))  # s3 is cut off from both networks, its daemon alive
    try:
        # The majority: s1 takes VIP A over (best priority left), but only once s3
        # has given it up: s3 might be answering clients on its side of the cut.
        deadline = time.monotonic() + 10
        while not s["s1"].has_address("198.18.0.60"):
            assert time.monotonic() < deadline, "s1 did not take VIP A over"
            time.sleep(0.02)  # polling interval of an observation
        assert not s["s3"].has_address("198.18.0.60"), "VIP A on s1 and s3 at once"
        given_up = [
            e["ts"] for e in s["s3"].events("ip-198.18.0.60", mark3) if e["kind"] == "remove"
        ]
        taken = [e["ts"] for e in s["s1"].events("ip-198.18.0.60", mark1) if e["kind"] == "restore"]
        assert given_up and taken and max(given_up) < min(taken)
        waited = [e["message"] for e in s["s1"].events("ip-198.18.0.60", mark1)]
        assert any("so that a holder that is only cut off has given it up" in m for m in waited)
        assert holders(list(s.values()), "198.18.0.61") == ["s1"]
        # The minority: s3 sees one vote of three, gave VIP A up and takes nothing,
        # not even when an administrator asks.
        refused = s["s3"].cli("in-service", "ip-198.18.0.61")
        assert refused.returncode != 0 and "minority" in refused.stderr
        assert not s["s3"].has_address("198.18.0.61")
        status = s["s3"].json("status")
        assert status["quorum"]["has_quorum"] is False and status["quorum"]["votes"] == 1
        messages = [e["message"] for e in s["s3"].events(after=mark3)]
        assert any(m.startswith("lost quorum (1 of 3 votes)") for m in messages)
        assert not s["s3"].has_address("198.18.0.61")
        assert not [m for m in messages if "taking it over" in m]
    finally:
        faults.plug(lab.node("s3"))
    wait_until(
        lambda: s["s3"].json("status")["quorum"]["has_quorum"], 5, message="s3 back in the majority"
    )
    assert holders(list(s.values()), "198.18.0.60") == ["s1"]
    assert holders(list(s.values()), "198.18.0.61") == ["s1"]
    assert probe.ping(lab.node("client"), "198.18.0.60") is not None


@pytest.fixture
def with_witness() -> Iterator[tuple[Topology, dict[str, LabServer]]]:
    yield from three_servers(frozenset({"s3"}))


def test_two_servers_and_a_witness(with_witness: tuple[Topology, dict[str, LabServer]]) -> None:
    lab, s = with_witness
    refused = s["s3"].cli("create", "ip", "--address", "198.18.0.62", "--netmask", "24")
    assert refused.returncode == 1 and "s3 is a witness" in refused.stderr
    s["s1"].json("create", "ip", "--address", "198.18.0.62", "--netmask", "24")
    s["s1"].json("extend", "ip-198.18.0.62", "--target", "s2")
    faults.unplug(lab.node("s1"))
    try:
        # s2 and the witness are two votes of three: s2 takes over; s1 alone gives it up.
        wait_until(lambda: s["s2"].has_address("198.18.0.62"), 5, message="s2 took over")
        wait_until(lambda: not s["s1"].has_address("198.18.0.62"), 5, message="s1 gave it up")
    finally:
        faults.plug(lab.node("s1"))
    wait_until(
        lambda: s["s1"].json("status")["quorum"]["has_quorum"], 5, message="s1 regained quorum"
    )
    story = [
        f"{e['server']} {e['kind']}: {e['message']}"
        for n in ("s1", "s2")
        for e in s[n].events()[-25:]
    ]
    assert holders([s["s1"], s["s2"]], "198.18.0.62") == ["s2"], story


def test_a_move_finishes_when_the_server_that_asked_for_it_dies(
    trio: tuple[Topology, dict[str, LabServer]], tmp_path: Path
) -> None:
    lab, s = trio
    vip = "198.18.0.63"
    app = App(tmp_path / "app", vip=vip)
    s["s1"].json("create", "ip", "--address", vip, "--netmask", "24")
    s["s1"].json(*app.create_args())
    s["s1"].json("depend", "app", f"ip-{vip}")
    s["s1"].json("extend", "app", "--target", "s2", "--target-priority", "10")
    s["s1"].json("extend", "app", "--target", "s3", "--target-priority", "20")
    app.mark("delay", "2")  # every app action takes 2 s: the take-down on s1 too
    command = ["in-service", "app", "--server", "s2", "--socket", str(s["s3"].socket)]
    cli = subprocess.Popen(
        [sys.executable, "-m", "ipkeeper", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        time.sleep(
            0.5
        )  # the point at which s3 dies: s1 is stopping the app (not a synchronisation)
        daemons.kill(lab.node("s3"))
    finally:
        cli.communicate(timeout=30)
    app.unmark("delay")
    wait_until(lambda: s["s2"].state("app") == "ISP", 15, message="the move finished on s2")
    assert holders([s["s1"], s["s2"]], vip) == ["s2"]
    assert s["s1"].state("app") == "OSU"
    assert probe.ping(lab.node("client"), vip) is not None
