"""Interface selection for a VIP (R3), as a pure function of the live configuration.

If any address in the VIP's subnet (a physical address or another VIP) is
already up on an interface, the VIP must go on that interface. If the subnet
is new on this server, any interface that is up will do. Best match first:
interfaces already carrying the subnet, then the interface whose addresses
share the longest prefix with the VIP, then by name. Bonding and VLAN
interfaces are ordinary interfaces here; loopback is never a choice.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from ipkeeper.kits.ip.params import IPInterface, ParamError


@dataclass(frozen=True)
class InterfaceInfo:
    """One interface as netlink reports it."""

    name: str
    index: int
    admin_up: bool
    carrier: bool
    loopback: bool
    addresses: tuple[IPInterface, ...]


@dataclass(frozen=True)
class Candidate:
    """A valid interface for the VIP and why it qualifies."""

    name: str
    reason: str


def _carries(info: InterfaceInfo, vip: IPInterface) -> bool:
    return any(
        a.version == vip.version and a.ip != vip.ip and a.ip in vip.network for a in info.addresses
    )


def _common_prefix(info: InterfaceInfo, vip: IPInterface) -> int:
    best = 0
    bits = vip.max_prefixlen
    for addr in info.addresses:
        if addr.version == vip.version:
            diff = int(addr.ip) ^ int(vip.ip)
            best = max(best, bits - diff.bit_length())
    return best


def candidates(vip: IPInterface, interfaces: list[InterfaceInfo]) -> list[Candidate]:
    """Valid interfaces for `vip`, best first (empty when there is none)."""
    usable = [i for i in interfaces if not i.loopback]
    carrying = [i for i in usable if _carries(i, vip)]
    if carrying:
        return [
            Candidate(i.name, f"already has an address in {vip.network}")
            for i in sorted(carrying, key=lambda i: (not i.admin_up, i.name))
        ]
    up = [i for i in usable if i.admin_up]
    ranked = sorted(up, key=lambda i: (-_common_prefix(i, vip), not i.carrier, i.name))
    return [Candidate(i.name, f"up; {vip.network} is new on this server") for i in ranked]


def choose(vip: IPInterface, interfaces: list[InterfaceInfo], requested: str | None) -> str:
    """The interface for `vip`: `requested` if valid, else the best candidate.

    Raises ParamError("interface", why) when `requested` is not a valid choice
    or when no interface at all is valid.
    """
    valid = candidates(vip, interfaces)
    if requested is None:
        if not valid:
            raise ParamError("interface", f"no interface is up to carry {vip}")
        return valid[0].name
    if requested in (c.name for c in valid):
        return requested
    raise ParamError("interface", refusal(vip, interfaces, requested))


def refusal(vip: IPInterface, interfaces: list[InterfaceInfo], requested: str) -> str:
    """Why `requested` is not a valid interface for `vip`."""
    by_name = {i.name: i for i in interfaces}
    info = by_name.get(requested)
    if info is None:
        return f"{requested} does not exist on this server"
    if info.loopback:
        return f"{requested} is a loopback interface"
    carrying = [i.name for i in interfaces if not i.loopback and _carries(i, vip)]
    if carrying:
        return f"{vip.network} is already up on {', '.join(carrying)}; the VIP must go there"
    return f"{requested} is down"


def version_addresses(
    info: InterfaceInfo, version: int
) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The addresses of one IP version on an interface."""
    return [a.ip for a in info.addresses if a.version == version]
