"""The lab itself (R34): topology, reachability, isolation, clean removal."""

from __future__ import annotations

import ipaddress

import pytest
from pyroute2 import IPRoute

from ipkeeper.lab import control, probe
from ipkeeper.lab.topology import ALLOWED, Topology
from ipkeeper.testing import run_cli

pytestmark = pytest.mark.lab

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


def test_client_pings_a_server_with_the_system_ping(lab: Topology) -> None:
    proc = run_cli("lab", "exec", "client", "--", "ping", "-c1", "-W1", "198.18.0.11")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 received" in proc.stdout


def test_broadcast_ping_from_s1_is_answered_by_the_router(lab: Topology) -> None:
    s1 = lab.node("s1")
    reply = probe.ping(s1, "198.18.0.255", ignore=("198.18.0.11",))
    assert reply is not None and str(reply.responder) == "198.18.0.1"
    proc = run_cli("lab", "exec", "s1", "--", "ping", "-b", "-c1", "-W1", "198.18.0.255")
    assert "from 198.18.0.1" in proc.stdout


def test_every_node_reaches_every_other_over_ipv4_and_ipv6(lab: Topology) -> None:
    for node in lab.nodes:
        for target in lab.nodes:
            if target is node:
                continue
            for version in (4, 6):
                addr = target.address("eth0", version).ip
                reply = probe.ping(node, addr)
                assert reply is not None and reply.responder == addr, f"{node.name} -> {addr}"


def test_second_network_joins_the_servers_only(lab: Topology) -> None:
    assert probe.ping(lab.node("s1"), "198.18.1.12") is not None
    with pytest.raises(OSError, match="unreachable"):
        probe.ping(lab.node("client"), "198.18.1.12", timeout=0.2)


def test_no_default_route_and_only_documentation_addresses(lab: Topology) -> None:
    for name in lab.namespaces:
        with IPRoute(netns=name) as ipr:
            for route in ipr.route("dump", table=254) + ipr.route("dump", family=10, table=254):
                assert route.get("dst_len") > 0, f"{name} has a default route: {route}"
                dst = ipaddress.ip_network(f"{route.get('dst')}/{route.get('dst_len')}")
                assert any(dst.subnet_of(a) for a in ALLOWED if a.version == dst.version), dst
            for addr in ipr.addr("dump"):
                ip = ipaddress.ip_address(addr.get("address"))
                if any(ip in net for net in LOOPBACK):
                    continue
                assert any(ip in net for net in ALLOWED), f"{name}: {ip}"


def test_up_again_changes_nothing_and_keeps_working(lab: Topology) -> None:
    steps: list[str] = []
    control.up(2, progress=steps.append)
    assert [s for s in steps if s.startswith("namespace")] == []
    assert probe.ping(lab.node("client"), "198.18.0.12") is not None


def test_exec_refuses_an_unknown_node(lab: Topology) -> None:
    proc = run_cli("lab", "exec", "s9", "--", "true")
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: name: no lab node 's9'")


def test_every_server_runs_its_own_daemon_reached_through_lab_exec(lab: Topology) -> None:
    import json

    for node in lab.servers:
        proc = run_cli("lab", "exec", node.name, "--", "ipkeeper", "status", "--json")
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["server"] == node.name
