"""IP kit costs in the lab: restore latency by part, quick_check cost, duplicate detection.

    sudo .venv/bin/python bench/ip_kit.py [--runs 30] [--checks 200]

Builds its own lab and removes it afterwards. Prints medians (and spreads) of:
- restore: unique check, add, announce, source, check, and the total;
- quick_check per call, wall and CPU, with the saved responder and by broadcast;
- how long the ARP probe / IPv6 DAD takes to hear a real duplicate, idle and
  with the cores oversubscribed, and how often a short listening window
  misses one: the figures behind the IP_UNIQUE_WAIT default.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
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
    """Bring the VIP up `runs` times on s1 and print each part's time."""
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
    """Time quick_check, with the saved responder and with a broadcast ping."""
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


def find_holder(address: str, wait: float) -> str | None:
    """Probe for `address` on eth0: who holds it."""
    addr = ipaddress.ip_address(address)
    if isinstance(addr, ipaddress.IPv4Address):
        return packets.arp_probe("eth0", addr, wait=wait)
    return packets.dad_probe("eth0", addr, wait=wait)


def bench_duplicate(lab: Topology, probes: int) -> None:
    """How fast a real duplicate is heard, and whether a short wait ever misses one."""
    s2, router = lab.node("s2"), lab.node("router")
    cases = (("ARP probe", VIP, 24), ("IPv6 DAD", "2001:db8::50", 64))
    for _, address, prefix in cases:
        addr_change(router, "eth0", f"{address}/{prefix}", add=True)
    try:
        for label, address, _ in cases:
            for hogs in (0, 2, 4):
                running = busy_cores(hogs)
                try:
                    heard = []
                    for _ in range(probes):
                        start = time.perf_counter()
                        assert on(s2, lambda a=address: find_holder(a, 1.0))
                        heard.append(time.perf_counter() - start)
                    missed = {
                        wait: sum(
                            1
                            for _ in range(probes)
                            if not on(s2, lambda a=address, w=wait: find_holder(a, w))
                        )
                        for wait in (0.005, 0.01, 0.03)
                    }
                finally:
                    for hog in running:
                        hog.kill()
                        hog.wait()
                misses = ", ".join(f"{w * 1000:g} ms: {m}" for w, m in missed.items())
                print(
                    f"{label}, {hogs} busy processes on {os.cpu_count()} cores: heard in {ms(heard)}; missed of {probes} with a wait of {misses}"
                )
    finally:
        for _, address, prefix in cases:
            addr_change(router, "eth0", f"{address}/{prefix}", add=False)


def main() -> None:
    """Run every benchmark in a fresh lab."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--checks", type=int, default=200)
    args = parser.parse_args()
    control.down()
    lab = control.up(2, daemons=False)  # the kit alone: no daemon competes for the CPU
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
