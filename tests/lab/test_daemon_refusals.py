"""Bad input is refused with exit 1, a one-line reason naming the field, and no change."""

from __future__ import annotations

from typing import Any

import pytest
from pyroute2 import IPRoute

from ipkeeper.testing.labtools import LabServer
from tests.conftest import App

pytestmark = pytest.mark.lab

VIP = "198.18.0.50"
TAG = f"ip-{VIP}"


def snapshot(s1: LabServer) -> tuple[Any, bool, bool]:
    """What a refusal must not change: resources, states, dependencies, ping lists, addresses."""
    resources = [
        (
            r["tag"],
            r["type"],
            r["children"],
            {n: (i["state"], i["priority"]) for n, i in r["servers"].items()},
        )
        for r in s1.status()["resources"]
    ]
    pinglist = s1.api("GET", f"/resources/{TAG}/pinglist")["addresses"]
    return (resources, pinglist), s1.has_address(VIP), s1.has_address("198.18.0.60")


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["create", "ip", "--address", "198.18.0.300", "--netmask", "24"], "error: address: '198.18.0.300' is not a valid IPv4 or IPv6 address"),
        (["create", "ip", "--address", "198.18.0.60", "--netmask", "255.0.255.0"], "error: netmask: 255.0.255.0 is not contiguous"),
        (["create", "ip", "--address", "198.18.0.60", "--netmask", "24", "--interface", "eth9"], "error: interface: eth9 does not exist on this server"),
        (["create", "ip", "--address", "198.18.0.60", "--netmask", "24", "--interface", "eth1"], "error: interface: 198.18.0.0/24 is already up on eth0; the VIP must go there"),
        (["create", "ip", "--address", "198.18.0.60", "--netmask", "24", "--tag", TAG], f"error: tag: {TAG} already exists"),
        (["create", "ip", "--address", "198.18.0.60", "--netmask", "24", "--tag", "x;rm -rf /"], "error: tag: 'x;rm -rf /' must be"),
        (["create", "ip", "--address", "198.18.0.60", "--netmask", "24", "--tag", "$(reboot)"], "error: tag: '$(reboot)' must be"),
        (["create", "ip", "--address", VIP, "--netmask", "24", "--tag", "again"], f"error: address: {VIP} is already used by resource {TAG}"),
        (["create", "ip", "--address", "198.18.0.60", "--netmask", "24", "--priority", "1000"], "error: priority: 1000 is above the maximum 999"),
        (["create", "ip", "--address", "198.18.0.60", "--netmask", "24", "--priority", "0"], "error: priority: 0 is below the minimum 1"),
        (["depend", TAG, "app"], f"error: dependency: {TAG} -> app -> {TAG} would be a cycle"),
        (["depend", "app", "app"], "error: dependency: app -> app would be a cycle"),
        (["pinglist", TAG, "add", "198.18.0.1", "198.18.0.999"], "error: pinglist: '198.18.0.999' is not an IPv4 or IPv6 address"),
        (["pinglist", TAG, "add", "router"], "error: pinglist: 'router' is not an IPv4 or IPv6 address"),
        (["set", TAG, "source-address", "maybe"], "error: value: 'maybe' must be one of yes, no"),
        (["show", "nothing"], "error: tag: no resource 'nothing'"),
        (["delete", f"{TAG}?x"], f"error: tag: no resource '{TAG}?x'"),
        (["pinglist", TAG, "clear", "198.18.0.1"], "error: addresses: clear takes no addresses"),
        (["create", "ip", "--address", "198.18.0.60", "--netmask", "²"], "error: netmask: '²' is neither a dotted netmask nor a prefix"),
        (["create", "app", "--tag", "evil", "--restore", "/tmp", "--remove", "true", "--check", "true"], "error: restore: /tmp is not an executable file"),
    ],
)  # fmt: skip
def test_bad_input_is_refused_and_changes_nothing(
    servers: dict[str, LabServer], app: App, args: list[str], error: str
) -> None:
    s1 = servers["s1"]
    s1.api("POST", "/resources/ip", {"address": VIP, "netmask": "24"})
    commands = {
        a: app.command(c) for a, c in (("restore", "start"), ("remove", "stop"), ("check", "check"))
    }
    s1.api("POST", "/resources/app", {"tag": "app", **commands})
    s1.api("POST", "/dependencies", {"parent": "app", "child": TAG})
    before = snapshot(s1)
    assert before[1] and before[0][0][1][2] == [TAG]
    proc = s1.cli(*args)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr.startswith(error), proc.stderr
    assert proc.stderr.count("\n") == 1  # one line
    assert snapshot(s1) == before


def test_bad_usage_exits_2(servers: dict[str, LabServer]) -> None:
    proc = servers["s1"].cli("create", "ip", "--address", VIP)
    assert proc.returncode == 2
    assert "Missing option '--netmask'" in proc.stderr


def test_an_unreachable_daemon_is_one_clear_line(servers: dict[str, LabServer]) -> None:
    from ipkeeper.testing import run_cli

    proc = run_cli("status", "--socket", "/run/ipkeeper-lab/nowhere.sock")
    assert proc.returncode == 1
    assert proc.stderr.startswith(
        "error: daemon: no ipkeeperd answers on /run/ipkeeper-lab/nowhere.sock"
    )


def addresses(server: LabServer) -> list[tuple[str, str, int]]:
    """Every address of every interface of a server."""
    with IPRoute(netns=server.node.namespace) as ipr:
        return sorted(
            (str(a["index"]), str(a.get_attr("IFA_ADDRESS")), int(a["prefixlen"]))
            for a in ipr.get_addr()
        )


@pytest.mark.parametrize(
    ("address", "netmask", "error"),
    [
        ("198.18.1.11", "24", "error: address: 198.18.1.11 is an address of s1 (on eth1): a server's own address cannot be a VIP"),
        ("198.18.0.11", "24", "error: address: 198.18.0.11 is an address of s1 (on eth0): a server's own address cannot be a VIP"),
        ("198.18.0.12", "24", "error: address: 198.18.0.12 is an address of s2 (a comm path's): a server's own address cannot be a VIP"),
        ("2001:db8::12", "64", "error: address: 2001:db8::12 is an address of s2 (on eth0): a server's own address cannot be a VIP"),
        ("198.18.0.0", "24", "error: address: 198.18.0.0 is the network address of 198.18.0.0/24"),
        ("198.18.0.255", "255.255.255.0", "error: address: 198.18.0.255 is the broadcast address of 198.18.0.0/24"),
        ("2001:db8::", "64", "error: address: 2001:db8:: is the subnet-router anycast address of 2001:db8::/64"),
        ("::ffff:198.18.0.50", "120", "error: address: ::ffff:198.18.0.50 is an IPv4-mapped IPv6 address: give the IPv4 address 198.18.0.50"),
    ],
)  # fmt: skip
def test_a_servers_own_address_or_a_subnets_edge_is_never_a_vip(
    servers: dict[str, LabServer], address: str, netmask: str, error: str
) -> None:
    """Issue 11, item 12: refused with one line, and every address of every server, every
    comm path and the (empty) catalog as they were."""
    s1, s2 = servers["s1"], servers["s2"]

    def everything() -> tuple[Any, ...]:
        paths = [(p["remote"], p["state"]) for p in s1.status()["servers"][1]["comm_paths"]]
        return addresses(s1), addresses(s2), paths, s1.status()["resources"]

    before = everything()
    assert all(state == "up" for _, state in before[2])
    proc = s1.cli("create", "ip", "--address", address, "--netmask", netmask)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr == error + "\n"
    assert everything() == before
