"""Parsing of IP resource parameters (R1, R2, R4, R13): pure logic."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipkeeper.kits.ip.params import (
    ParamError,
    check_tag,
    check_vip,
    default_tag,
    dotted_netmask,
    interface_of,
    parse_address,
    parse_netmask,
    parse_ping_list,
)


def fake_resolver(name: str) -> list:
    table = {"vip.example": ["198.18.0.60"], "v6.example": ["2001:db8::60"], "loop": ["127.0.0.1"]}
    if name not in table:
        raise OSError(f"[Errno -2] Name or service not known: {name}")
    return [ipaddress.ip_address(a) for a in table[name]]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("198.18.0.50", "198.18.0.50"),
        (" 2001:db8::50 ", "2001:db8::50"),
        ("vip.example", "198.18.0.60"),
        ("v6.example", "2001:db8::60"),
    ],
)
def test_addresses_and_names_resolve(text: str, expected: str) -> None:
    assert str(parse_address(text, fake_resolver)) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "address: is required"),
        ("198.18.0.300", "address: '198.18.0.300' is not a valid IPv4 or IPv6 address"),
        ("2001:db8::zz", "address: '2001:db8::zz' is not a valid IPv4 or IPv6 address"),
        ("bad;name", "address: 'bad;name' is neither an IP address nor a host name"),
        ("nowhere.example", "address: cannot resolve 'nowhere.example'"),
        ("127.0.0.1", "address: 127.0.0.1 is a loopback address"),
        ("loop", "address: loop (127.0.0.1) is a loopback address"),
        ("224.0.0.1", "address: 224.0.0.1 is a multicast address"),
        ("0.0.0.0", "address: 0.0.0.0 is the unspecified address"),
        ("::", "address: :: is the unspecified address"),
        ("::1", "address: ::1 is a loopback address"),
        ("ff02::1", "address: ff02::1 is a multicast address"),
        ("255.255.255.255", "address: 255.255.255.255 is broadcast"),
        ("::ffff:198.18.0.1", "address: ::ffff:198.18.0.1 is an IPv4-mapped IPv6 address: give the IPv4 address 198.18.0.1"),
    ],
)  # fmt: skip
def test_bad_addresses_are_refused_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(ParamError) as exc:
        parse_address(text, fake_resolver)
    assert str(exc.value).startswith(reason)
    assert exc.value.field == "address"


@pytest.mark.parametrize(
    ("text", "version", "prefix"),
    [
        ("255.255.255.0", 4, 24),
        ("255.255.252.0", 4, 22),
        ("24", 4, 24),
        ("/16", 4, 16),
        ("64", 6, 64),
        ("255.255.255.255", 4, 32),
        ("128.0.0.0", 4, 1),
    ],
)
def test_netmasks(text: str, version: int, prefix: int) -> None:
    assert parse_netmask(text, version) == prefix


@pytest.mark.parametrize(
    ("text", "version", "reason"),
    [
        ("255.0.255.0", 4, "not contiguous"),
        ("255.255.255.1", 4, "not contiguous"),
        ("0", 4, "out of range"),
        ("33", 4, "out of range"),
        ("0.0.0.0", 4, "empty mask"),
        ("255.255.255.0", 6, "prefix length"),
        ("129", 6, "out of range"),
        ("abc", 4, "neither a dotted netmask nor a prefix"),
    ],
)
def test_bad_netmasks(text: str, version: int, reason: str) -> None:
    with pytest.raises(ParamError, match=reason):
        parse_netmask(text, version)


@given(st.integers(min_value=1, max_value=32))
def test_every_contiguous_mask_round_trips(prefix: int) -> None:
    dotted = str(ipaddress.IPv4Network(f"0.0.0.0/{prefix}").netmask)
    assert parse_netmask(dotted, 4) == prefix


@given(st.integers(min_value=1, max_value=0xFFFFFFFF))
def test_a_mask_is_accepted_exactly_when_contiguous(mask: int) -> None:
    inverted = ~mask & 0xFFFFFFFF
    contiguous = inverted & (inverted + 1) == 0
    text = str(ipaddress.IPv4Address(mask))
    if contiguous:
        assert parse_netmask(text, 4) == bin(mask).count("1")
    else:
        with pytest.raises(ParamError, match="not contiguous"):
            parse_netmask(text, 4)


def test_subnet_and_netmask_display() -> None:
    cidr = interface_of(ipaddress.ip_address("198.18.2.77"), 22)
    assert str(cidr.network) == "198.18.0.0/22"
    assert dotted_netmask(cidr) == "255.255.252.0"
    assert dotted_netmask(interface_of(ipaddress.ip_address("2001:db8::1"), 64)) == "64"


def test_tags() -> None:
    assert default_tag("198.18.0.50") == "ip-198.18.0.50"
    assert default_tag("vip.example") == "ip-vip.example"
    assert check_tag("ip-2001:db8::50") == "ip-2001:db8::50"
    for bad in ("a;rm -rf /", "$(x)", "a b", "", "-x", "a" * 64, "x`y`"):
        with pytest.raises(ParamError, match="tag"):
            check_tag(bad)


def test_ping_list_checks_format_and_warns_about_own_addresses() -> None:
    own = {ipaddress.ip_address("198.18.0.11")}
    addrs, warnings = parse_ping_list(["198.18.0.1", "198.18.0.11", "198.18.0.1"], own)
    assert [str(a) for a in addrs] == ["198.18.0.1", "198.18.0.11"]
    assert warnings == ["198.18.0.11 is one of the cluster's own addresses: it would always answer"]
    with pytest.raises(ParamError, match=r"pinglist: 'x\.y' is not an IPv4 or IPv6 address"):
        parse_ping_list(["198.18.0.1", "x.y"])


@pytest.mark.parametrize(
    ("cidr", "chosen", "reason"),
    [
        ("198.18.0.0/24", False, "address: 198.18.0.0 is the network address of 198.18.0.0/24"),
        ("198.18.0.255/24", False, "address: 198.18.0.255 is the broadcast address of 198.18.0.0/24"),
        ("198.18.3.255/22", False, "address: 198.18.3.255 is the broadcast address of 198.18.0.0/22"),
        ("198.18.0.4/30", True, "address: 198.18.0.4 is the network address of 198.18.0.4/30"),
        ("2001:db8::/64", False, "address: 2001:db8:: is the subnet-router anycast address of 2001:db8::/64"),
        ("169.254.0.5/16", False, "address: 169.254.0.5 is link-local: name its interface (--interface) to use it"),
        ("fe80::5/64", True, "address: fe80::5 is IPv6 link-local: it needs a zone, a VIP has none"),
    ],
)  # fmt: skip
def test_addresses_no_subnet_allows_as_a_vip(cidr: str, chosen: bool, reason: str) -> None:
    with pytest.raises(ParamError) as exc:
        check_vip(ipaddress.ip_interface(cidr), interface_chosen=chosen)
    assert str(exc.value) == reason


@pytest.mark.parametrize(
    "cidr", ["198.18.0.1/24", "198.18.0.254/24", "198.18.0.4/31", "198.18.0.5/32", "2001:db8::1/64",
             "2001:db8::/127", "169.254.0.5/16"],
)  # fmt: skip
def test_addresses_a_subnet_allows(cidr: str) -> None:
    check_vip(ipaddress.ip_interface(cidr), interface_chosen=cidr.startswith("169.254."))
