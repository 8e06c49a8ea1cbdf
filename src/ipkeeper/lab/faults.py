"""Faults to inject in the lab, as they happen to real servers."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator

from pyroute2 import IPRoute

from ipkeeper.lab import daemons
from ipkeeper.lab import netns as ns
from ipkeeper.lab.topology import COMM_PORT, SWITCH_NS, Node, veth_name


def set_switch_port(node: Node, ifname: str, up: bool) -> None:
    """Plug or unplug a node's cable at the switch (its interface loses carrier)."""
    name = veth_name(node, node.port(ifname))

    def flip() -> None:
        with IPRoute() as ipr:
            ipr.link("set", index=ipr.link_lookup(ifname=name)[0], state="up" if up else "down")

    # On a thread of its own inside the switch namespace: pyroute2 cannot run on
    # a thread whose asyncio loop is running (a browser test's, for one).
    ns.call_in(SWITCH_NS, flip)


def unplug(node: Node, *ifnames: str) -> None:
    """Pull the cables of the given interfaces (all of them when none is named)."""
    for ifname in ifnames or tuple(p.ifname for p in node.ports):
        set_switch_port(node, ifname, False)


def plug(node: Node, *ifnames: str) -> None:
    """Put the cables back."""
    for ifname in ifnames or tuple(p.ifname for p in node.ports):
        set_switch_port(node, ifname, True)


@contextlib.contextmanager
def comm_paths_cut(node: Node, peer_lan_address: str) -> Iterator[None]:
    """Every comm path between `node` and one peer cut while the LAN stays up: eth1
    unplugged, and TCP to the peer's LAN address blackholed (ARP still flows)."""

    def route(op: str) -> None:
        with IPRoute() as ipr:
            ipr.route(op, dst=f"{peer_lan_address}/32", type="blackhole")

    unplug(node, "eth1")
    ns.call_in(node.namespace, lambda: route("add"))
    try:
        yield
    finally:
        ns.call_in(node.namespace, lambda: route("del"))
        plug(node, "eth1")


LOSS_TABLE = "ipk_loss"


def lossy(node: Node, percent: int) -> None:
    """Drop `percent` % of the comm-path packets `node` sends, at random (nft `numgen
    random`, in its own namespace): heartbeats, messages and their acknowledgements."""
    if not 0 <= percent <= 100:
        raise ValueError(f"percent: {percent} is not 0..100")
    lossless(node)
    drop = f"numgen random mod 100 < {percent} drop"
    rules = (
        f"table inet {LOSS_TABLE} {{\n"
        "  chain out {\n"
        "    type filter hook output priority 0; policy accept;\n"
        f"    meta l4proto {{ tcp, udp }} th dport {COMM_PORT} {drop}\n"
        f"    meta l4proto {{ tcp, udp }} th sport {COMM_PORT} th dport != {COMM_PORT} {drop}\n"
        "  }\n"
        "}\n"
    )
    _nft(node, ["-f", "-"], rules)


def lossless(node: Node) -> None:
    """No more deliberate loss on `node` (nothing happens when there was none)."""
    _nft(node, ["delete", "table", "inet", LOSS_TABLE], check=False)


def _nft(node: Node, args: list[str], text: str = "", check: bool = True) -> None:
    argv = [sys.executable, "-m", "ipkeeper.lab.nsexec", node.namespace, "--", "nft", *args]
    subprocess.run(argv, input=text, text=True, capture_output=True, check=check, timeout=30)


def crash(node: Node) -> None:
    """A server crash: the machine freezes, drops off every network, and its daemon dies.

    The daemon is frozen first (so it cannot react to its links going down),
    then the cables go (so that, as with a power loss, no connection is closed
    politely: a killed process's sockets would send resets), then it is
    killed. The kernel's addresses stay configured, unreachable.
    """
    daemons.freeze(node)
    unplug(node)
    daemons.kill(node)


def recover(node: Node) -> None:
    """The crashed server comes back: cables in, daemon started again."""
    plug(node)
    daemons.start(node)
