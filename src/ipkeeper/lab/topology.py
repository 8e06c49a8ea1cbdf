"""The lab's fixed topology (SPEC.md section 5, R34), as pure data.

    ipk-sw      bridges br0 (the LAN) and br1 (a second network)
    ipk-sN      eth0 198.18.0.(10+N)/24, 2001:db8::(10+N)/64 on br0; eth1 198.18.1.(10+N)/24 on br1
                (the IPv6 host part is written in the same digits: s1 is 2001:db8::11)
    ipk-router  eth0 198.18.0.1/24, 2001:db8::1/64, 198.18.4.1/22; answers broadcast pings
    ipk-client  eth0 198.18.0.100/24, 2001:db8::100/64, 198.18.7.254/22
                (198.18.4.0/22 is the subnet of bench/scale.py's thousand VIPs)

Every address is inside 198.18.0.0/15 or 2001:db8::/32, and no node has a
route beyond its own subnets.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

NS_PREFIX = "ipk-"
SWITCH_NS = "ipk-sw"
LAN_BRIDGE = "br0"
NET1_BRIDGE = "br1"
LAN4 = ipaddress.IPv4Network("198.18.0.0/24")
LAN6 = ipaddress.IPv6Network("2001:db8::/64")
NET1 = ipaddress.IPv4Network("198.18.1.0/24")
# A subnet for a thousand VIPs (bench/scale.py), on the LAN: the router answers
# broadcast pings in it (198.18.4.1) and the client has an address there.
SCALE4 = ipaddress.IPv4Network("198.18.4.0/22")
ALLOWED = (ipaddress.ip_network("198.18.0.0/15"), ipaddress.ip_network("2001:db8::/32"))
COMM_PORT = 7470
API_PORT = 7480
MAX_SERVERS = 9

IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface

_NODE_NS = re.compile(r"^ipk-(sw|router|client|s[1-9][0-9]?)$")


@dataclass(frozen=True)
class Port:
    """One interface of a lab node, joined to a bridge in the switch namespace."""

    ifname: str
    bridge: str
    mac: str
    addresses: tuple[IPInterface, ...]


@dataclass(frozen=True)
class Node:
    """A lab host: a server, the router or the client, each in its own namespace."""

    name: str
    ports: tuple[Port, ...]
    answers_broadcast_ping: bool = False

    @property
    def namespace(self) -> str:
        """The network namespace this node lives in."""
        return NS_PREFIX + self.name

    @property
    def is_server(self) -> bool:
        """True for s1..sN, the nodes that run ipkeeperd."""
        return re.fullmatch(r"s[0-9]+", self.name) is not None

    def port(self, ifname: str) -> Port:
        """The port called `ifname`."""
        for port in self.ports:
            if port.ifname == ifname:
                return port
        raise KeyError(f"{self.name} has no {ifname}")

    def address(self, ifname: str = "eth0", version: int = 4) -> IPInterface:
        """This node's address of the given IP version on `ifname`."""
        for addr in self.port(ifname).addresses:
            if addr.version == version:
                return addr
        raise KeyError(f"{self.name} {ifname} has no IPv{version} address")


def _mac(net: int, host: int) -> str:
    # Locally administered, "IK" in the second and third octets.
    return f"02:49:4b:{net:02x}:00:{host:02x}"


def server(i: int) -> Node:
    """Server number `i` (1-based) of the lab."""
    host = 10 + i
    return Node(
        name=f"s{i}",
        ports=(
            Port(
                "eth0",
                LAN_BRIDGE,
                _mac(0, host),
                (
                    ipaddress.ip_interface(f"{LAN4.network_address + host}/24"),
                    ipaddress.ip_interface(f"2001:db8::{host}/64"),  # textual, as SPEC writes it
                ),
            ),
            Port(
                "eth1",
                NET1_BRIDGE,
                _mac(1, host),
                (ipaddress.ip_interface(f"{NET1.network_address + host}/24"),),
            ),
        ),
    )


ROUTER = Node(
    name="router",
    ports=(
        Port(
            "eth0",
            LAN_BRIDGE,
            _mac(0, 1),
            (
                ipaddress.ip_interface("198.18.0.1/24"),
                ipaddress.ip_interface("2001:db8::1/64"),
                ipaddress.ip_interface(f"{SCALE4.network_address + 1}/22"),
            ),
        ),
    ),
    answers_broadcast_ping=True,
)

CLIENT = Node(
    name="client",
    ports=(
        Port(
            "eth0",
            LAN_BRIDGE,
            _mac(0, 100),
            (
                ipaddress.ip_interface("198.18.0.100/24"),
                ipaddress.ip_interface("2001:db8::100/64"),
                ipaddress.ip_interface(f"{SCALE4.broadcast_address - 1}/22"),
            ),
        ),
    ),
)


@dataclass(frozen=True)
class Topology:
    """The whole lab for a given number of servers."""

    servers: tuple[Node, ...]

    @property
    def nodes(self) -> tuple[Node, ...]:
        """Every host: servers first, then router and client."""
        return (*self.servers, ROUTER, CLIENT)

    @property
    def namespaces(self) -> tuple[str, ...]:
        """Every namespace the lab creates, the switch first."""
        return (SWITCH_NS, *(n.namespace for n in self.nodes))

    def node(self, name: str) -> Node:
        """The node called `name` (s1, router, client); KeyError if absent."""
        for node in self.nodes:
            if node.name == name:
                return node
        known = ", ".join(n.name for n in self.nodes)
        raise KeyError(f"no lab node {name!r} (known: {known})")


def build_topology(servers: int = 2) -> Topology:
    """The lab with `servers` servers (1..MAX_SERVERS)."""
    if not 1 <= servers <= MAX_SERVERS:
        raise ValueError(f"servers: must be 1..{MAX_SERVERS}, got {servers}")
    return Topology(tuple(server(i) for i in range(1, servers + 1)))


def is_lab_namespace(name: str) -> bool:
    """True for namespace names the lab creates (and so may remove)."""
    return _NODE_NS.match(name) is not None


def veth_name(node: Node, port: Port) -> str:
    """Name of the switch-side end of a node's port (at most 15 characters)."""
    return f"{node.name}-{port.ifname}"
