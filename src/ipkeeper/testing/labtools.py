"""Lab helpers for tests: act on a node, read what a client's kernel learned."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from pyroute2 import IPRoute

from ipkeeper.lab import netns as ns
from ipkeeper.lab.topology import Node

T = TypeVar("T")


def on(node: Node, fn: Callable[[], T]) -> T:
    """Run `fn` inside `node`'s namespace (netlink and sockets included), return its result."""
    return ns.call_in(node.namespace, fn)


def neighbour_mac(node: Node, address: str) -> str | None:
    """The MAC that `node`'s neighbour table holds for `address`, or None."""
    family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
    with IPRoute(netns=node.namespace) as ipr:
        for entry in ipr.get_neighbours(family=family):
            if entry.get("dst") == address and entry.get("lladdr"):
                return str(entry.get("lladdr"))
    return None


def link_set(namespace: str, ifname: str, up: bool) -> None:
    """Set an interface in a lab namespace up or down (as an administrator would)."""
    with IPRoute(netns=namespace) as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname=ifname)[0], state="up" if up else "down")


def addr_change(node: Node, ifname: str, cidr: str, add: bool) -> None:
    """Add or delete an address by hand on a node's interface (IPv6 without waiting for DAD)."""
    iface = ipaddress.ip_interface(cidr)
    with IPRoute(netns=node.namespace) as ipr:
        index = ipr.link_lookup(ifname=ifname)[0]
        ipr.addr(
            "add" if add else "del",
            index=index,
            address=str(iface.ip),
            prefixlen=iface.network.prefixlen,
            # IPv6: usable at once, as after the kernel's own DAD has finished.
            flags=0x02 if add and iface.version == 6 else 0,
        )


def write_tunables(path: Path, **values: object) -> None:
    """Write a tunables file as an administrator would (KEY=VALUE lines)."""
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
