"""Every kernel change the IP kit makes, through pyroute2 (the only importer of it).

Each function opens its own netlink socket (well under a millisecond), so it
acts in the network namespace of the calling thread and shares no state
between threads. Adding an address that is there and deleting one that is not
both succeed (EEXIST, EADDRNOTAVAIL, ENODEV), so callers can be idempotent.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from dataclasses import dataclass

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from ipkeeper.kits.ip.interfaces import InterfaceInfo
from ipkeeper.kits.ip.params import IPAddress, IPInterface, IPNetwork

IFF_UP = 0x1
IFF_LOOPBACK = 0x8
IFF_LOWER_UP = 0x10000
IFA_F_SECONDARY = 0x01
IFA_F_NODAD = 0x02
RT_TABLE_MAIN = 254


class NetlinkFailure(Exception):
    """A netlink request the kernel refused, with its reason."""


def _family(version: int) -> int:
    return socket.AF_INET if version == 4 else socket.AF_INET6


def interfaces() -> list[InterfaceInfo]:
    """Every interface with its state and addresses."""
    with IPRoute() as ipr:
        links = ipr.link("dump")
        addrs = ipr.addr("dump")
    by_index: dict[int, list[IPInterface]] = {}
    for a in addrs:
        iface = ipaddress.ip_interface(f"{a.get('address')}/{a['prefixlen']}")
        by_index.setdefault(a["index"], []).append(iface)
    result = []
    for link in links:
        flags = link["flags"]
        result.append(
            InterfaceInfo(
                name=link.get("ifname"),
                index=link["index"],
                admin_up=bool(flags & IFF_UP),
                carrier=bool(flags & IFF_LOWER_UP),
                loopback=bool(flags & IFF_LOOPBACK),
                addresses=tuple(by_index.get(link["index"], ())),
            )
        )
    return result


@dataclass(frozen=True)
class LinkState:
    """Whether an interface exists, is administratively up, and has carrier."""

    exists: bool
    admin_up: bool = False
    carrier: bool = False


def link_state(ifname: str) -> LinkState:
    """The state of `ifname` now."""
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=ifname)
        if not found:
            return LinkState(False)
        flags = ipr.link("get", index=found[0])[0]["flags"]
    return LinkState(True, bool(flags & IFF_UP), bool(flags & IFF_LOWER_UP))


def address_and_link(ifname: str, address: IPAddress) -> tuple[bool, LinkState]:
    """Whether `address` is on `ifname`, and the link's state, in one netlink session
    (the health check's first two steps, at half the cost of asking separately)."""
    with IPRoute() as ipr:
        try:
            link = ipr.link("get", ifname=ifname)[0]
        except NetlinkError:
            return False, LinkState(False)
        flags = link["flags"]
        state = LinkState(True, bool(flags & IFF_UP), bool(flags & IFF_LOWER_UP))
        present = any(
            ipaddress.ip_address(a.get("address")) == address
            for a in ipr.addr("dump", index=link["index"])
        )
    return present, state


def _index(ipr: IPRoute, ifname: str) -> int:
    found = ipr.link_lookup(ifname=ifname)
    if not found:
        raise NetlinkFailure(f"{ifname} does not exist")
    return int(found[0])


def addresses_on(ifname: str) -> list[IPInterface]:
    """Addresses configured on `ifname` (empty if it does not exist)."""
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=ifname)
        if not found:
            return []
        return [
            ipaddress.ip_interface(f"{a.get('address')}/{a['prefixlen']}")
            for a in ipr.addr("dump", index=found[0])
        ]


def has_address(ifname: str, address: IPAddress) -> bool:
    """True when `address` is configured on `ifname` (any prefix)."""
    return any(a.ip == address for a in addresses_on(ifname))


def where_is(address: IPAddress) -> tuple[str, int] | None:
    """(interface, prefix) where `address` is configured on this server, or None."""
    for info in interfaces():
        for a in info.addresses:
            if a.ip == address:
                return info.name, a.network.prefixlen
    return None


def own_addresses() -> set[IPAddress]:
    """Every address configured on this server."""
    return {a.ip for info in interfaces() for a in info.addresses}


def add_address(ifname: str, iface: IPInterface) -> None:
    """Add `iface` to `ifname` (a secondary when the subnet is already there); idempotent.

    IPv6 addresses are added without the kernel's own DAD: the kit has already
    checked uniqueness and the address must be usable at once.
    """
    with IPRoute() as ipr:
        index = _index(ipr, ifname)
        try:
            ipr.addr(
                "add",
                index=index,
                address=str(iface.ip),
                prefixlen=iface.network.prefixlen,
                flags=IFA_F_NODAD if iface.version == 6 else 0,
            )
        except NetlinkError as exc:
            if exc.code != errno.EEXIST:
                raise NetlinkFailure(f"adding {iface} to {ifname}: {exc.args[-1]}") from exc


def delete_address(ifname: str, iface: IPInterface) -> None:
    """Remove `iface` from `ifname`; succeeds when it is already absent."""
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=ifname)
        if not found:
            return
        try:
            ipr.addr(
                "del", index=found[0], address=str(iface.ip), prefixlen=iface.network.prefixlen
            )
        except NetlinkError as exc:
            if exc.code not in (errno.EADDRNOTAVAIL, errno.ENODEV, errno.ENOENT):
                raise NetlinkFailure(f"removing {iface} from {ifname}: {exc.args[-1]}") from exc


@dataclass(frozen=True)
class SubnetRoute:
    """The kernel's route to a connected subnet: its device and preferred source."""

    network: IPNetwork
    ifindex: int
    prefsrc: IPAddress | None


def subnet_route(network: IPNetwork) -> SubnetRoute | None:
    """The main-table route to exactly `network`, or None."""
    with IPRoute() as ipr:
        routes = ipr.route(
            "dump",
            family=_family(network.version),
            table=RT_TABLE_MAIN,
            dst=str(network.network_address),
            dst_len=network.prefixlen,
        )
        for r in routes:
            if r.get("dst_len") == network.prefixlen and r.get("dst") == str(
                network.network_address
            ):
                src = r.get("prefsrc")
                return SubnetRoute(
                    network, r.get("oif"), ipaddress.ip_address(src) if src else None
                )
    return None


def set_route_source(network: IPNetwork, ifname: str, source: IPAddress) -> None:
    """Make traffic to `network` leave from `source` (R14): replace the subnet route."""
    with IPRoute() as ipr:
        try:
            ipr.route(
                "replace",
                dst=str(network),
                oif=_index(ipr, ifname),
                prefsrc=str(source),
                proto="kernel",
                scope="link",
                table=RT_TABLE_MAIN,
            )
        except NetlinkError as exc:
            raise NetlinkFailure(f"setting source {source} for {network}: {exc.args[-1]}") from exc


RTMGRP_LINK = 0x1
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV6_IFADDR = 0x100


def change_socket() -> socket.socket:
    """A non-blocking netlink socket that becomes readable whenever a link or an
    address changes on this server, so a lost carrier or a deleted address is
    checked at once instead of at the next CHECK_INTERVAL."""
    sock = socket.socket(
        socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK, 0
    )  # NETLINK_ROUTE
    sock.bind((0, RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR))
    return sock
