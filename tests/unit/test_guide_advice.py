"""The guide's warnings, the extend's defaults and answers as the CLI gives them, and
the version watch: pure parts of issue 14's work."""

from __future__ import annotations

import ipaddress

import pytest

from ipkeeper.cli.commands import _answers, plan_lines
from ipkeeper.cluster.versions import VersionWatch, differs
from ipkeeper.engine.extendcheck import default_interface
from ipkeeper.kits.ip.advice import (
    cluster_servers_named,
    hosts_names,
    mixed_netmasks,
    not_in_hosts,
)
from ipkeeper.kits.ip.interfaces import InterfaceInfo
from ipkeeper.kits.ip.params import IPSpec


def iface(name: str, *addrs: str) -> InterfaceInfo:
    return InterfaceInfo(
        name, 0, True, True, False, tuple(ipaddress.ip_interface(a) for a in addrs)
    )


ETH0 = iface("eth0", "198.18.0.11/24", "2001:db8::11/64", "fe80::1/64")


def test_mixed_netmasks_on_one_interface_are_warned_about() -> None:
    warning = mixed_netmasks(ipaddress.ip_interface("198.18.0.50/25"), ETH0)
    assert warning is not None and "198.18.0.11/24" in warning and "/25" in warning
    assert mixed_netmasks(ipaddress.ip_interface("198.18.0.50/24"), ETH0) is None
    # Another family's addresses and link-local ones do not count.
    assert mixed_netmasks(ipaddress.ip_interface("2001:db8::50/64"), ETH0) is None
    assert mixed_netmasks(ipaddress.ip_interface("2001:db8::50/120"), ETH0) is not None
    assert mixed_netmasks(ipaddress.ip_interface("198.18.9.50/24"), iface("eth9")) is None
    assert mixed_netmasks(ipaddress.ip_interface("198.18.9.50/24"), None) is None


HOSTS = """127.0.0.1 localhost
# the VIPs
198.18.0.60   dbip dbip.example.org   # the database
2001:db8::60  dbip6
bad-line
"""


def test_a_name_missing_from_the_hosts_file_is_warned_about() -> None:
    names = hosts_names(HOSTS)
    assert names["dbip.example.org"] == [ipaddress.ip_address("198.18.0.60")]
    db = ipaddress.ip_address("198.18.0.60")
    assert not_in_hosts("dbip", db, HOSTS) is None
    assert not_in_hosts("DBIP.example.org.", db, HOSTS) is None
    assert not_in_hosts("198.18.0.60", db, None) is None  # an address needs no entry
    elsewhere = not_in_hosts("webip", ipaddress.ip_address("198.18.0.61"), HOSTS)
    assert elsewhere is not None and "198.18.0.61 webip" in elsewhere
    # In the file, but with another address: the entry is not the one in use.
    assert not_in_hosts("dbip", ipaddress.ip_address("198.18.0.99"), HOSTS) is not None
    assert not_in_hosts("dbip", db, None) is not None  # the file could not be read


def test_a_cluster_server_in_a_ping_list_is_named_once_per_address() -> None:
    servers = {
        ipaddress.ip_address("198.18.0.11"): "s1",
        ipaddress.ip_address("198.18.0.12"): "s2",
    }
    listed = [ipaddress.ip_address(a) for a in ("198.18.0.1", "198.18.0.12", "198.18.0.11")]
    warnings = cluster_servers_named(listed, servers, "s1")
    assert len(warnings) == 2
    assert warnings[0].startswith("198.18.0.12 is an address of s2,")
    assert warnings[1].startswith("198.18.0.11 is an address of s1 (this server),")


def test_the_target_defaults_to_the_template_s_interface_where_valid() -> None:
    target = [iface("eth0", "198.18.0.12/24"), iface("eth1", "198.18.1.12/24")]
    new_subnet = IPSpec(ipaddress.ip_address("198.18.2.60"), 24, "-")
    assert default_interface(new_subnet, target, "eth1") == "eth1"
    assert default_interface(new_subnet, target, "eth7") is None  # not there: the best valid
    known_subnet = IPSpec(ipaddress.ip_address("198.18.0.60"), 24, "-")
    assert default_interface(known_subnet, target, "eth1") is None  # R3: it must go on eth0


def test_cli_answers_split_the_root_s_from_each_resource_s() -> None:
    root, per = _answers(("eth1", "ip-b=eth0"), ("ip-b=ip-b2", "web2"))
    assert root == {"interface": "eth1", "target_tag": "web2"}
    assert per == [{"tag": "ip-b", "interface": "eth0", "target_tag": "ip-b2"}]


def test_the_plan_shows_every_resource_with_its_interfaces() -> None:
    plan = {
        "tag": "app", "template": "s1", "target": "s2", "target_priority": 10, "dry_run": True,
        "resources": [
            {"tag": "ip-a", "target_tag": "ip-a", "type": "ip", "address": "198.18.2.60",
             "netmask": "255.255.255.0", "template_interface": "eth1", "interface": "eth0",
             "choices": [{"name": "eth0", "reason": ""}, {"name": "eth1", "reason": ""}]},
            {"tag": "app", "target_tag": "app2", "type": "app"},
        ],
    }  # fmt: skip
    assert plan_lines(plan) == [
        "would extend app from s1 to s2 (priority 10):",
        "  ip-a: 198.18.2.60 netmask 255.255.255.0, eth1 on s1 -> eth0 on s2 "
        "(valid there: eth0, eth1)",
        "  app as app2: app",
    ]


@pytest.mark.parametrize("ours", ["0.1.0"])
def test_a_peer_s_version_is_news_once_per_change(ours: str) -> None:
    watch = VersionWatch(ours)
    assert watch.news("s2", None) is None
    assert watch.news("s2", ours) is None  # the same version: nothing to say
    first = watch.news("s2", "0.0.9")
    assert first is not None and "s2 runs ipkeeper 0.0.9, this server 0.1.0" in first
    assert watch.news("s2", "0.0.9") is None  # reconnections do not repeat it
    assert watch.news("s2", ours) == "s2 now runs ipkeeper 0.1.0, as this server does"
    unknown = watch.news("s3", "unknown")
    assert unknown is not None and "an unknown version" in unknown
    assert differs("0.0.9", ours) and not differs(None, ours) and not differs(ours, ours)
