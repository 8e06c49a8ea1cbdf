"""The guide's planning advice for IP resources, as warnings (never refusals): pure.

- several netmasks on one interface can mismatch packets;
- a symbolic name should be in every server's /etc/hosts (a recovery must
  not wait on DNS);
- a ping list must not name a server of the cluster: it always answers,
  whatever becomes of the VIP (R13).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping

from ipkeeper.kits.ip.interfaces import InterfaceInfo
from ipkeeper.kits.ip.params import IPAddress, IPInterface

HOSTS_FILE = "/etc/hosts"


def mixed_netmasks(vip: IPInterface, interface: InterfaceInfo | None) -> str | None:
    """A warning when `interface` already carries an address of the VIP's family with
    another prefix length (link-local addresses aside)."""
    if interface is None:
        return None
    others = [
        a
        for a in interface.addresses
        if a.version == vip.version
        and a.ip != vip.ip
        and not a.ip.is_link_local
        and a.network.prefixlen != vip.network.prefixlen
    ]
    if not others:
        return None
    shown = ", ".join(str(a) for a in others[:3]) + (" ..." if len(others) > 3 else "")
    return (
        f"{interface.name} already carries {shown}: a /{vip.network.prefixlen} beside it "
        "mixes netmasks on one interface, which can mismatch packets (the guide advises "
        "one netmask per interface)"
    )


def hosts_names(text: str) -> dict[str, list[IPAddress]]:
    """Every name and alias of a hosts file (lower case), with its addresses."""
    names: dict[str, list[IPAddress]] = {}
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) < 2:
            continue
        try:
            address = ipaddress.ip_address(fields[0].split("%")[0])
        except ValueError:
            continue
        for name in fields[1:]:
            names.setdefault(name.lower().rstrip("."), []).append(address)
    return names


def not_in_hosts(entered: str, resolved: IPAddress, hosts_text: str | None) -> str | None:
    """A warning when the address was entered as a name that the hosts file lacks
    (`hosts_text` None: the file could not be read)."""
    name = entered.strip()
    try:
        ipaddress.ip_address(name)
        return None  # an address needs no hosts entry
    except ValueError:
        pass
    if hosts_text is not None and resolved in hosts_names(hosts_text).get(
        name.lower().rstrip("."), []
    ):
        return None
    return (
        f"{name} is not in {HOSTS_FILE} with {resolved} (it was resolved elsewhere, by DNS): "
        f"add `{resolved} {name}` to {HOSTS_FILE} on every server, so that a recovery "
        "never waits on DNS"
    )


def cluster_servers_named(
    addresses: Iterable[IPAddress], servers: Mapping[IPAddress, str], here: str
) -> list[str]:
    """One warning for each of `addresses` that belongs to a server of the cluster
    (`servers`: address -> server name; `here`: this server's name)."""
    warnings = []
    for address in addresses:
        owner = servers.get(address)
        if owner is None:
            continue
        who = f"{owner} (this server)" if owner == here else owner
        warnings.append(
            f"{address} is an address of {who}, a server of this cluster: it always "
            "answers, whatever becomes of the VIP, so the check would prove nothing"
        )
    return warnings
