"""Build and tear down the lab's namespaces, bridges and veth pairs (R34).

Everything is made through pyroute2 inside the lab's own namespaces: each
veth pair is created in the switch namespace with its peer placed directly in
the node's namespace, so nothing ever appears in the root namespace.

`up` is idempotent (it completes whatever is missing) and `down` removes
whatever the lab made, whether `up` finished or not.
"""

from __future__ import annotations

import errno
from collections.abc import Callable

from pyroute2 import IPRoute, netns
from pyroute2.netlink.exceptions import NetlinkError

from ipkeeper.lab import netns as ns
from ipkeeper.lab.topology import (
    LAN_BRIDGE,
    NET1_BRIDGE,
    SWITCH_NS,
    Node,
    Port,
    Topology,
    is_lab_namespace,
    veth_name,
)

IFA_F_NODAD = 0x02
Progress = Callable[[str], None]


def _quiet(_step: str) -> None:
    pass


def lab_namespaces() -> list[str]:
    """The lab namespaces that exist right now."""
    return sorted(n for n in netns.listnetns() if is_lab_namespace(n))


def _ensure_namespace(name: str) -> bool:
    if ns.exists(name):
        return False
    netns.create(name)
    return True


def _no_link_local(name: str) -> None:
    # Interfaces created in this namespace from now on get no fe80:: address,
    # so every address in the lab stays inside the documentation ranges.
    ns.write_sysctl(name, "net.ipv6.conf.default.addr_gen_mode", "1")


def _ensure_bridges(ipr: IPRoute) -> None:
    for bridge in (LAN_BRIDGE, NET1_BRIDGE):
        if not ipr.link_lookup(ifname=bridge):
            # No STP delay and no multicast snooping: ports forward at once and
            # IPv6 neighbour discovery reaches every node.
            ipr.link("add", ifname=bridge, kind="bridge", br_forward_delay=0, br_mcast_snooping=0)
        ipr.link("set", index=ipr.link_lookup(ifname=bridge)[0], state="up")


def _ensure_veth(sw: IPRoute, node_ipr: IPRoute, node: Node, port: Port) -> None:
    outer = veth_name(node, port)
    have_outer = bool(sw.link_lookup(ifname=outer))
    have_inner = bool(node_ipr.link_lookup(ifname=port.ifname))
    if have_outer and not have_inner:
        # Left half-made by an interrupted `up`: start this pair again.
        sw.link("del", index=sw.link_lookup(ifname=outer)[0])
        have_outer = False
    if not have_outer:
        sw.link(
            "add",
            ifname=outer,
            kind="veth",
            peer={"ifname": port.ifname, "net_ns_fd": node.namespace},
        )
    idx = sw.link_lookup(ifname=outer)[0]
    sw.link("set", index=idx, master=sw.link_lookup(ifname=port.bridge)[0], state="up")


def _ensure_addresses(ipr: IPRoute, port: Port) -> None:
    idx = ipr.link_lookup(ifname=port.ifname)[0]
    ipr.link("set", index=idx, address=port.mac)
    for addr in port.addresses:
        try:
            ipr.addr(
                "add",
                index=idx,
                address=str(addr.ip),
                prefixlen=addr.network.prefixlen,
                flags=IFA_F_NODAD if addr.version == 6 else 0,
            )
        except NetlinkError as exc:
            if exc.code != errno.EEXIST:
                raise
    ipr.link("set", index=idx, state="up")


def _configure_node(sw: IPRoute, node: Node) -> None:
    with IPRoute(netns=node.namespace) as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
        for port in node.ports:
            _ensure_veth(sw, ipr, node, port)
            _ensure_addresses(ipr, port)
    broadcast = "0" if node.answers_broadcast_ping else "1"
    ns.write_sysctl(node.namespace, "net.ipv4.icmp_echo_ignore_broadcasts", broadcast)


def up(topology: Topology, progress: Progress = _quiet) -> None:
    """Create whatever part of the lab is missing; afterwards the lab is complete."""
    for name in topology.namespaces:
        if _ensure_namespace(name):
            progress(f"namespace {name}")
        _no_link_local(name)
    # The switch namespace forwards frames and has no addresses of its own.
    ns.write_sysctl(SWITCH_NS, "net.ipv6.conf.all.disable_ipv6", "1")
    ns.write_sysctl(SWITCH_NS, "net.ipv6.conf.default.disable_ipv6", "1")
    with IPRoute(netns=SWITCH_NS) as sw:
        _ensure_bridges(sw)
        progress("bridges")
        for node in topology.nodes:
            _configure_node(sw, node)
            progress(f"node {node.name}")


def remove_namespaces(progress: Progress = _quiet) -> None:
    """Delete every lab namespace (their veths go with them)."""
    for name in lab_namespaces():
        netns.remove(name)
        progress(f"removed {name}")
