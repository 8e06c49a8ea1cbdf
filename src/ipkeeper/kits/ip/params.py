"""Parsing an IP resource's parameters (R1, R2, R4): pure, no I/O but the resolver."""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
Resolver = Callable[[str], list[IPAddress]]

HOSTNAME_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
TAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,62}$")


class ParamError(ValueError):
    """A refused parameter: the field and the reason, for a one-line error."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def system_resolver(name: str) -> list[IPAddress]:
    """Addresses for `name` from the hosts file and DNS (getaddrinfo), in its order."""
    seen: list[IPAddress] = []
    for info in socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP):
        addr = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if addr not in seen:
            seen.append(addr)
    return seen


def _check_usable(addr: IPAddress, text: str) -> IPAddress:
    mapped = addr.ipv4_mapped if isinstance(addr, ipaddress.IPv6Address) else None
    problems = (
        (addr.is_unspecified, "is the unspecified address"),
        (addr.is_loopback, "is a loopback address"),
        (addr.is_multicast, "is a multicast address"),
        (addr.version == 4 and addr == ipaddress.IPv4Address("255.255.255.255"), "is broadcast"),
        (mapped is not None, f"is an IPv4-mapped IPv6 address: give the IPv4 address {mapped}"),
    )
    for bad, why in problems:
        if bad:
            raise ParamError("address", f"{text} {why}")
    return addr


def check_vip(cidr: IPInterface, interface_chosen: bool) -> None:
    """What can never be a VIP of its own subnet: the subnet's network or broadcast address
    (IPv4 up to /30; RFC 3021's /31 and a /32 have none), IPv6's subnet-router anycast
    address (up to /126), and a link-local address unless the interface was chosen
    explicitly (such an address only means something on its own link; IPv4 only: an
    IPv6 one needs a zone that a VIP cannot carry)."""
    addr, net = cidr.ip, cidr.network
    if addr.version == 4 and net.prefixlen <= 30:
        if addr == net.network_address:
            raise ParamError("address", f"{addr} is the network address of {net}")
        if addr == net.broadcast_address:
            raise ParamError("address", f"{addr} is the broadcast address of {net}")
    if addr.version == 6 and net.prefixlen <= 126 and addr == net.network_address:
        raise ParamError("address", f"{addr} is the subnet-router anycast address of {net}")
    if addr.is_link_local and addr.version == 6:
        raise ParamError("address", f"{addr} is IPv6 link-local: it needs a zone, a VIP has none")
    if addr.is_link_local and not interface_chosen:
        raise ParamError(
            "address", f"{addr} is link-local: name its interface (--interface) to use it"
        )


def parse_address(text: str, resolver: Resolver = system_resolver) -> IPAddress:
    """R1: an IPv4/IPv6 address, or a host name resolved by the hosts file or DNS."""
    text = text.strip()
    if not text:
        raise ParamError("address", "is required")
    try:
        return _check_usable(ipaddress.ip_address(text), text)
    except ValueError as exc:
        if isinstance(exc, ParamError):
            raise
    if ":" in text or re.fullmatch(r"[0-9.]+", text):
        raise ParamError("address", f"{text!r} is not a valid IPv4 or IPv6 address")
    if not HOSTNAME_RE.fullmatch(text):
        raise ParamError("address", f"{text!r} is neither an IP address nor a host name")
    try:
        found = resolver(text)
    except (OSError, UnicodeError) as exc:
        raise ParamError("address", f"cannot resolve {text!r}: {exc}") from None
    if not found:
        raise ParamError("address", f"{text!r} resolves to no address")
    return _check_usable(found[0], f"{text} ({found[0]})")


def parse_netmask(text: str, version: int) -> int:
    """R2: prefix length from a dotted IPv4 netmask or a prefix; contiguity enforced."""
    text = text.strip().removeprefix("/")
    top = 32 if version == 4 else 128
    if text.isascii() and text.isdigit():
        prefix = int(text)
        if not 1 <= prefix <= top:
            raise ParamError("netmask", f"prefix /{prefix} is out of range 1..{top}")
        return prefix
    if version == 6:
        raise ParamError("netmask", f"{text!r}: an IPv6 netmask is a prefix length 1..128")
    try:
        mask = int(ipaddress.IPv4Address(text))
    except ValueError:
        raise ParamError("netmask", f"{text!r} is neither a dotted netmask nor a prefix") from None
    inverted = ~mask & 0xFFFFFFFF
    if inverted & (inverted + 1):
        raise ParamError("netmask", f"{text} is not contiguous")
    prefix = 32 - inverted.bit_length()
    if prefix == 0:
        raise ParamError("netmask", f"{text} is an empty mask")
    return prefix


def interface_of(address: IPAddress, prefix: int) -> IPInterface:
    """The address with its prefix, e.g. 198.18.0.50/24."""
    return ipaddress.ip_interface(f"{address}/{prefix}")


def dotted_netmask(iface: IPInterface) -> str:
    """The netmask as the guide shows it: dotted for IPv4, prefix for IPv6."""
    return str(iface.netmask) if iface.version == 4 else str(iface.network.prefixlen)


def default_tag(entered: str) -> str:
    """R4: `ip-<resource>` where <resource> is the name or address as entered."""
    return f"ip-{entered.strip()}"


def check_tag(tag: str) -> str:
    """A tag is 1-63 characters of letters, digits and . _ : @ - (never shell syntax)."""
    if not TAG_RE.fullmatch(tag):
        raise ParamError(
            "tag",
            f"{tag!r} must be 1-63 letters, digits or . _ : @ - and start with a letter or digit",
        )
    return tag


@dataclass(frozen=True)
class IPSpec:
    """An IP resource's own parameters, validated."""

    address: IPAddress
    prefix: int
    interface: str
    source_address: bool = False
    restore_recover: bool = True
    broadcast_ping: bool = True  # False: this resource's NOBCASTPING (R9)

    @functools.cached_property
    def cidr(self) -> IPInterface:
        """Address with prefix."""
        return interface_of(self.address, self.prefix)

    @functools.cached_property
    def network(self) -> IPNetwork:
        """R2: the resource's subnet."""
        return self.cidr.network

    @classmethod
    def from_props(cls, props: Mapping[str, Any]) -> IPSpec:
        """Build from a stored property mapping."""
        return cls(
            address=ipaddress.ip_address(str(props["address"])),
            prefix=int(str(props["prefix"])),
            interface=str(props["interface"]),
            source_address=bool(props.get("source_address", False)),
            restore_recover=bool(props.get("restore_recover", True)),
            broadcast_ping=bool(props.get("broadcast_ping", True)),
        )

    def to_props(self) -> dict[str, object]:
        """The mapping the store keeps."""
        return {
            "address": str(self.address),
            "prefix": self.prefix,
            "interface": self.interface,
            "source_address": self.source_address,
            "restore_recover": self.restore_recover,
            "broadcast_ping": self.broadcast_ping,
        }


def parse_ping_list(
    entries: list[str], own: set[IPAddress] | None = None
) -> tuple[list[IPAddress], list[str]]:
    """R13: check each entry's format; warn about the cluster's own addresses.

    Only the format is checked (nothing is pinged). Returns the addresses and
    the warnings; raises ParamError naming the first malformed entry.
    """
    addresses: list[IPAddress] = []
    warnings = []
    for entry in entries:
        try:
            addr = ipaddress.ip_address(entry.strip())
        except ValueError:
            raise ParamError("pinglist", f"{entry!r} is not an IPv4 or IPv6 address") from None
        if addr.is_unspecified or addr.is_multicast:
            raise ParamError("pinglist", f"{entry} cannot be pinged as a single host")
        if own and addr in own:
            warnings.append(f"{addr} is one of the cluster's own addresses: it would always answer")
        if addr not in addresses:
            addresses.append(addr)
    return addresses, warnings
