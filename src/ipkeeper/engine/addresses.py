"""Never a server's own address as a VIP (issue 11, item 12).

A VIP is an address that moves between servers; an address a server has of its
own (its LAN address, its heartbeat address, anything configured on it that no
resource of the cluster owns) must never become one: taking it down would cut
that server off, moving it would take its identity to another. So creation
refuses, before anything is touched:

- an address configured on this server, on any interface;
- an address of a peer: the remote end of any comm path to it (known even while
  that peer is down), and, asked of every live peer, any address configured on
  it that is not a VIP resource of the cluster (the `used` request);

and check_vip (kits/ip/params.py) refuses what no subnet allows: its network
and broadcast addresses, link-local without an explicit interface.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from ipkeeper.engine.core import Engine
from ipkeeper.engine.errors import OpError
from ipkeeper.kits.ip.interfaces import InterfaceInfo
from ipkeeper.kits.ip.params import IPAddress

REASON = "a server's own address cannot be a VIP"


def own_interface(interfaces: Iterable[InterfaceInfo], addr: IPAddress) -> str | None:
    """The interface of this server that has `addr` configured, if any."""
    for info in interfaces:
        if any(a.ip == addr for a in info.addresses):
            return info.name
    return None


def peer_owning(engine: Engine, addr: IPAddress) -> str | None:
    """The peer whose comm-path address `addr` is, from the configuration (dead or alive)."""
    for server in engine.peers.servers():
        if server.get("local"):
            continue
        for path in server.get("comm_paths", []):
            if ipaddress.ip_address(str(path["remote"])) == addr:
                return str(server["name"])
    return None


def refuse_own(engine: Engine, addr: IPAddress, interfaces: Iterable[InterfaceInfo]) -> None:
    """Refuse `addr` when it is this server's or a peer's comm path's (see the module
    docstring); the address of an IP resource that exists is R5's to refuse, first."""
    ifname = own_interface(interfaces, addr)
    if ifname is not None:
        raise OpError("address", f"{addr} is an address of {engine.server} (on {ifname}): {REASON}")
    peer = peer_owning(engine, addr)
    if peer is not None:
        raise OpError("address", f"{addr} is an address of {peer} (a comm path's): {REASON}")


def own_here(
    engine: Engine, interfaces: Iterable[InterfaceInfo], addresses: Iterable[str]
) -> dict[str, str]:
    """For a peer's `used` question: which of `addresses` are configured here without
    being the address of an IP resource, each with its interface."""
    found = {}
    for text in addresses:
        try:
            addr = ipaddress.ip_address(text)
        except ValueError:
            continue
        ifname = own_interface(interfaces, addr)
        if ifname is not None and engine.repo.ip_resource_with(str(addr)) is None:
            found[text] = ifname
    return found


def refuse_peers_own(server: str, answer: dict[str, object], addresses: Iterable[str]) -> None:
    """Refuse what a peer said is an address of its own (its answer to `used`)."""
    own = answer.get("addresses_own")
    if not isinstance(own, dict):
        return  # a peer of an older version does not say
    for address in addresses:
        if address in own:
            raise OpError(
                "address", f"{address} is an address of {server} (on {own[address]}): {REASON}"
            )
