"""Reachability probes run from inside a lab node, with ipkeeper's own packets."""

from __future__ import annotations

import functools
import ipaddress

from ipkeeper.kits.ip import packets
from ipkeeper.lab import netns as ns
from ipkeeper.lab.topology import Node


def ping(
    node: Node,
    target: str | packets.IPAddress,
    *,
    source: str | None = None,
    ifname: str | None = None,
    timeout: float = 1.0,
    ignore: tuple[str, ...] = (),
) -> packets.EchoReply | None:
    """Ping `target` from `node` once; the answer (who, round trip) or None."""
    return packets.echo(
        [ipaddress.ip_address(target)],
        source=ipaddress.ip_address(source) if source else None,
        ifname=ifname,
        timeout=timeout,
        ignore=[ipaddress.ip_address(a) for a in ignore],
        make_socket=functools.partial(ns.socket_in, node.namespace),
    )
