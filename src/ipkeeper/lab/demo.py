"""`ipkeeper lab demo` (what `make demo` runs): the lab, shown working, then removed."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from ipkeeper.lab import control, probe
from ipkeeper.lab.topology import Topology


def reachability_table(topology: Topology) -> Table:
    """Who answers whom: every node pings every other node's LAN addresses."""
    nodes = topology.nodes
    table = Table(title="reachability on the LAN (round trip, ms)")
    table.add_column("from \\ to")
    for target in nodes:
        table.add_column(f"{target.name}\nIPv4 / IPv6", justify="right")
    for node in nodes:
        cells = []
        for target in nodes:
            if target is node:
                cells.append("[dim]self[/dim]")
                continue
            rtts = []
            for version in (4, 6):
                reply = probe.ping(node, target.address("eth0", version).ip, timeout=1.0)
                rtts.append(f"{reply.rtt * 1000:.2f}" if reply else "[red]none[/red]")
            cells.append(" / ".join(rtts))
        table.add_row(node.name, *cells)
    return table


def run_demo(console: Console) -> int:
    """Run the demo; returns the process exit code."""
    from ipkeeper.cli.lab import topology_table

    try:
        topology = control.up(2, progress=lambda s: console.print(f"[dim]lab: {s}[/dim]"))
        console.print(topology_table(topology))
        console.print(reachability_table(topology))
        s1 = topology.node("s1")
        broadcast = s1.address("eth0", 4).network.broadcast_address
        own = tuple(str(a.ip) for p in s1.ports for a in p.addresses)
        reply = probe.ping(s1, broadcast, ignore=own)
        who = f"{reply.responder} in {reply.rtt * 1000:.2f} ms" if reply else "nobody"
        console.print(f"broadcast ping from s1 to {broadcast}: answered by {who}")
        return 0 if reply else 1
    finally:
        control.down(progress=lambda s: console.print(f"[dim]lab: {s}[/dim]"))
