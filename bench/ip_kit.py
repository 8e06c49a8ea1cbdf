"""IP kit costs in the lab: restore latency by part, quick_check cost, duplicate detection.

    sudo .venv/bin/python bench/ip_kit.py [--runs 30] [--checks 200]

Builds its own lab and removes it afterwards. Prints medians (and spreads) of:
- restore: unique check, add, announce, source, check, and the total;
- quick_check per call, wall and CPU, with the saved responder and by broadcast;
- how long the ARP probe / IPv6 DAD takes to hear a real duplicate, idle and
  with both cores busy: the figure behind the IP_UNIQUE_WAIT default.
"""

from __future__ import annotations

import argparse
import ipaddress
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ipkeeper.config.tunables import Tunables
from ipkeeper.kits.ip import packets
from ipkeeper.kits.ip.kit import IPKit
from ipkeeper.lab import control
from ipkeeper.lab.topology import Node, Topology
from ipkeeper.model.resource import Instance
from ipkeeper.testing.labtools import addr_change, on, write_tunables

VIP = "198.18.0.50"


def ms(values: list[float]) -> str:
    """Median (min-max) in milliseconds."""
    low, high = min(values) * 1000, max(values) * 1000
    return f"{statistics.median(values) * 1000:8.2f} ms  ({low:.2f}-{high:.2f})"


def vip_instance() -> Instance:
    """The VIP every benchmark uses, on eth0."""
    return Instance(f"ip-{VIP}", "ip", {"address": VIP, "prefix": 24, "interface": "eth0"})


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """Wall and CPU seconds of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def bench_restore(kit: IPKit, s1: Node, runs: int) -> None:
    inst = vip_instance()
    parts: dict[str, list[float]] = {}
    totals = []
    for _ in range(runs):
        on(s1, lambda: kit.remove(inst))
        kit.check.forget(inst.tag)
        start = time.perf_counter()
        result = on(s1, lambda: kit.restore(inst))
        totals.append(time.perf_counter() - start)
        assert result.ok, result.reason
        for part, seconds in result.timings.items():
            parts.setdefault(part, []).append(seconds)
    print(f"restore of {VIP}/24 on s1, {runs} runs (median, min-max):")
    for part in ("unique", "add", "announce", "source", "check"):
        print(f"  {part:10s} {ms(parts[part])}")
    print(f"  {'total':10s} {ms(totals)}")


def bench_checks(kit: IPKit, tunables: Path, s1: Node, checks: int) -> None:
    inst = vip_instance()
    for label, settings in (("saved responder", {}), ("broadcast ping", {"IP_NOSAVEREPLY": 1})):
        write_tunables(tunables, **settings)
        walls, cpus = [], []
        for _ in range(checks):
            wall, cpu = on(s1, lambda: timed(lambda: kit.quick_check(inst)))
            walls.append(wall)
            cpus.append(cpu)
        print(f"quick_check ({label}), {checks} calls: wall {ms(walls)}; CPU {ms(cpus)}")
    write_tunables(tunables)


def busy_cores(n: int) -> list[subprocess.Popen[bytes]]:
    """Start `n` processes that each keep one core busy."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def find_holder(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Probe for `addr` on eth0 with a generous wait: who holds it."""
    if isinstance(addr, ipaddress.IPv4Address):
        return packets.arp_probe("eth0", addr, wait=1.0)
    return packets.dad_probe("eth0", addr, wait=1.0)


def bench_duplicate(lab: Topology, probes: int) -> None:
    s2, router = lab.node("s2"), lab.node("router")
    cases = (("IPv4 ARP probe", VIP, 24), ("IPv6 DAD", "2001:db8::50", 64))
    for label, address, prefix in cases:
        addr = ipaddress.ip_address(address)
        addr_change(router, "eth0", f"{address}/{prefix}", add=True)
        try:
            for load in ("idle", "both cores busy"):
                hogs = busy_cores(2) if load != "idle" else []
                try:
                    heard, missed = [], 0
                    for _ in range(probes):
                        start = time.perf_counter()
                        holder = on(s2, lambda a=addr: find_holder(a))
                        if holder:
                            heard.append(time.perf_counter() - start)
                        else:
                            missed += 1
                finally:
                    for hog in hogs:
                        hog.kill()
                        hog.wait()
                p99 = sorted(heard)[int(len(heard) * 0.99) - 1] if heard else float("nan")
                print(
                    f"{label} hears a real duplicate ({load}), {probes} probes: {ms(heard)};"
                    f" p99 {p99 * 1000:.2f} ms; missed {missed}"
                )
        finally:
            addr_change(router, "eth0", f"{address}/{prefix}", add=False)


def main() -> None:
    """Run every benchmark in a fresh lab."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--checks", type=int, default=200)
    args = parser.parse_args()
    control.down()
    lab = control.up(2)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tunables = Path(tmp) / "ipkeeper"
            write_tunables(tunables)
            kit = IPKit(Tunables(tunables))
            s1 = lab.node("s1")
            bench_restore(kit, s1, args.runs)
            bench_checks(kit, tunables, s1, args.checks)
            on(
                s1,
                lambda: kit.remove(
                    Instance(f"ip-{VIP}", "ip", {"address": VIP, "prefix": 24, "interface": "eth0"})
                ),
            )
            bench_duplicate(lab, args.checks)
    finally:
        control.down()


if __name__ == "__main__":
    main()
