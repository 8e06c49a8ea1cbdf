"""Interface selection (R3): pure logic over a snapshot of interfaces."""

from __future__ import annotations

import ipaddress

import pytest

from ipkeeper.kits.ip.interfaces import InterfaceInfo, candidates, choose
from ipkeeper.kits.ip.params import ParamError


def iface(
    name: str, *addrs: str, up: bool = True, carrier: bool = True, lo: bool = False
) -> InterfaceInfo:
    return InterfaceInfo(name, 0, up, carrier, lo, tuple(ipaddress.ip_interface(a) for a in addrs))


SERVER = [
    iface("lo", "127.0.0.1/8", lo=True),
    iface("eth0", "198.18.0.11/24", "2001:db8::11/64"),
    iface("eth1", "198.18.1.11/24"),
    iface("bond0.42", "198.18.42.11/24"),
    iface("eth2", up=False),
]


def vip(text: str) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    return ipaddress.ip_interface(text)


def test_a_known_subnet_must_go_on_its_interface() -> None:
    assert [c.name for c in candidates(vip("198.18.0.50/24"), SERVER)] == ["eth0"]
    assert choose(vip("198.18.0.50/24"), SERVER, None) == "eth0"
    assert choose(vip("198.18.42.50/24"), SERVER, None) == "bond0.42"
    assert choose(vip("2001:db8::50/64"), SERVER, None) == "eth0"


def test_another_vip_in_the_subnet_counts() -> None:
    with_vip = [*SERVER[:2], iface("eth1", "198.18.1.11/24", "198.18.5.60/24")]
    assert choose(vip("198.18.5.61/24"), with_vip, None) == "eth1"


def test_a_new_subnet_may_go_on_any_up_interface_best_match_first() -> None:
    names = [c.name for c in candidates(vip("198.18.1.200/30"), SERVER)]
    assert names[0] == "eth1"  # shares the longest prefix with 198.18.1.200
    assert set(names) == {"eth0", "eth1", "bond0.42"}  # never lo, never the down eth2
    assert choose(vip("198.18.7.1/24"), SERVER, "bond0.42") == "bond0.42"


@pytest.mark.parametrize(
    ("requested", "reason"),
    [
        ("eth1", "198.18.0.0/24 is already up on eth0; the VIP must go there"),
        ("eth9", "eth9 does not exist on this server"),
        ("lo", "lo is a loopback interface"),
        ("eth2", "198.18.0.0/24 is already up on eth0; the VIP must go there"),
    ],
)
def test_invalid_choices_say_why(requested: str, reason: str) -> None:
    with pytest.raises(ParamError) as exc:
        choose(vip("198.18.0.50/24"), SERVER, requested)
    assert exc.value.field == "interface"
    assert exc.value.reason == reason


def test_a_down_interface_is_refused_for_a_new_subnet() -> None:
    with pytest.raises(ParamError, match="eth2 is down"):
        choose(vip("198.18.9.1/24"), SERVER, "eth2")


def test_no_valid_interface_at_all() -> None:
    with pytest.raises(ParamError, match="no interface is up"):
        choose(vip("198.18.9.1/24"), [SERVER[0], SERVER[4]], None)
