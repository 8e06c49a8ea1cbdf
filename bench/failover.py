"""What a client of the VIP sees when its server fails, for ipkeeper (and keepalived).

    .venv/bin/python bench/failover.py [--runs 5] [--compare keepalived] [--faults crash,link,kill,switchover]
    .venv/bin/python bench/failover.py --witness   # QUORUM=majority, s3 a witness

A client in the lab sends a UDP echo to the VIP every 10 ms; each server
answers with its own name, from the VIP. For each fault injected on s1 (at a
random phase of the heartbeat cycle) it reports:

- silence: the longest time without any answer;
- to new: from the fault to the first answer from s2;
- old after new: answers from s1 after s2's first (must be 0);
- holders: reachable servers holding the VIP once things settle (must be 1).

Faults: crash (both cables pulled and the daemon killed), link (s1's LAN cable
pulled, daemon alive), kill (the daemon alone killed with SIGKILL), switchover
(an administrator moves the VIP to s2). Medians and min-max over the runs.

With --witness the lab has a third server, a witness, and every server runs
with QUORUM=majority: the price of the quorum rule in failover time.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ipkeeper.lab import control, daemons
from ipkeeper.lab.echo import ECHO_PORT
from ipkeeper.lab.prober import Prober
from ipkeeper.lab.topology import Topology
from ipkeeper.testing.labtools import LabServer
from systems import FAULTS, VIP, Ipkeeper, Keepalived, holds_vip

System = Ipkeeper | Keepalived


@dataclass
class Run:
    """One fault's outcome as the client saw it."""

    silence: float
    to_new: float | None
    old_after_new: int
    holders: int
    holders_back: int


def reachable_holders(lab: Topology, fault: str) -> int:
    """Servers holding the VIP that the LAN can reach (s1 is unplugged after a crash or link fault)."""
    count = 0
    for node in lab.servers:
        cut = node.name == "s1" and fault in ("crash", "link")
        if not cut and holds_vip(node):
            count += 1
    return count


def one_run(lab: Topology, system: System, fault: str, phase: float) -> Run:
    """Inject `fault` once and measure it."""
    system.on_s1()
    prober = Prober(lab.node("client"), VIP).start()
    try:
        time.sleep(0.3 + random.uniform(0, phase))
        fault_at = time.monotonic()
        system.inject(fault)
        deadline = fault_at + 15
        while time.monotonic() < deadline and prober.first_from("s2", fault_at) is None:
            if fault == "kill" and time.monotonic() - fault_at > 3:
                break  # the VIP may rightly stay on s1
            time.sleep(0.01)
        time.sleep(0.5)
    finally:
        prober.stop()
    new = prober.first_from("s2", fault_at)
    end = time.monotonic() - 0.05
    silence = prober.longest_silence(fault_at - 0.05, end)
    old_after = prober.answered_by("s1", new) if new is not None else 0
    time.sleep(1.0)
    holders = reachable_holders(lab, fault)
    system.undo(fault)
    time.sleep(1.0)
    holders_back = sum(1 for node in lab.servers if holds_vip(node))
    return Run(silence, None if new is None else new - fault_at, old_after, holders, holders_back)


def figure(values: list[float]) -> str:
    """Median (min-max) in milliseconds."""
    if not values:
        return "-"
    ms = [v * 1000 for v in values]
    return f"{statistics.median(ms):.0f} ms ({min(ms):.0f}-{max(ms):.0f})"


def report(system: str, fault: str, runs: list[Run]) -> list[str]:
    """One table row."""
    to_new = [r.to_new for r in runs if r.to_new is not None]
    moved = f"{len(to_new)}/{len(runs)}"
    return [
        system,
        fault,
        figure([r.silence for r in runs]),
        f"{figure(to_new)} [{moved}]",
        str(max(r.old_after_new for r in runs)),
        ",".join(str(r.holders) for r in runs),
        ",".join(str(r.holders_back) for r in runs),
    ]


def bench(
    lab: Topology, system: System, fault_names: list[str], runs: int, phase: float
) -> list[list[str]]:
    """Every fault, `runs` times, on one system."""
    rows = []
    system.setup()
    try:
        for fault in fault_names:
            results = [one_run(lab, system, fault, phase) for _ in range(runs)]
            rows.append(report(system.name, fault, results))
            print("  ".join(rows[-1]), flush=True)
    finally:
        system.teardown()
    return rows


def with_witness() -> Topology:
    """A lab of s1, s2 and the witness s3, every daemon with QUORUM=majority."""
    lab = control.up(3, daemons=False)
    daemons.write_configs(lab, frozenset({"s3"}))
    for node in lab.servers:
        LabServer(node).tune(QUORUM="majority")
    daemons.start_all(lab)
    return lab


def main() -> None:
    """Build a lab, measure, print the table, remove the lab."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--faults", default=",".join(FAULTS))
    parser.add_argument("--compare", choices=["keepalived"])
    parser.add_argument("--witness", action="store_true", help="QUORUM=majority with s3 a witness")
    args = parser.parse_args()
    fault_names = [f for f in args.faults.split(",") if f]
    print(f"{os.cpu_count()} cores; {platform.platform()}", flush=True)
    control.down()
    lab = with_witness() if args.witness else control.up(2)
    try:
        for node in lab.servers:
            control.spawn(
                node,
                f"echo-{node.name}",
                [sys.executable, "-m", "ipkeeper.lab.echo", node.name, str(ECHO_PORT)],
            )
        tunables = {
            t["name"]: t["value"]
            for t in LabServer(lab.node("s1")).api("GET", "/tunables")["tunables"]
        }
        print(
            f"ipkeeper: HBEAT_INTERVAL={tunables['HBEAT_INTERVAL']} HBEAT_MISSES={tunables['HBEAT_MISSES']} "
            f"IP_UNIQUE_WAIT={tunables['IP_UNIQUE_WAIT']} CHECK_INTERVAL={tunables['CHECK_INTERVAL']}; {args.runs} runs per fault"
        )
        header = [
            "system",
            "fault",
            "silence",
            "fault -> s2 answers",
            "old after new",
            "holders",
            "after return",
        ]
        print("  ".join(header), flush=True)
        ipkeeper = Ipkeeper(lab)
        if args.witness:
            ipkeeper.name = "ipkeeper, QUORUM=majority + witness"
            print(
                f"QUORUM_RELEASE={tunables['QUORUM_RELEASE']} QUORUM_GRACE={tunables['QUORUM_GRACE']}"
            )
        rows = bench(lab, ipkeeper, fault_names, args.runs, tunables["HBEAT_INTERVAL"])
        if args.compare == "keepalived":
            for advert, version in ((1.0, 2), (0.1, 3)):
                system = Keepalived(lab, advert, version)
                print(f"{system.name}: {system.version_text}", flush=True)
                rows += bench(lab, system, fault_names, args.runs, advert)
        print()
        print("| " + " | ".join(header) + " |")
        print("|" + " --- |" * len(header))
        for row in rows:
            print("| " + " | ".join(row) + " |")
    finally:
        control.down()


if __name__ == "__main__":
    main()
