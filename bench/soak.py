"""Does a healthy cluster ever think a server died? Idle, then with every core busy.

    .venv/bin/python bench/soak.py [--seconds 120] [--hogs 4]

Builds a two-server lab with a VIP on s1 extended to s2, leaves it alone for
SECONDS, then for SECONDS more with HOGS processes spinning on the CPUs, and
counts comm paths that went down, peers declared dead and failovers (all
must be 0), from both daemons' event logs.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from ipkeeper.lab import control
from ipkeeper.lab.topology import Topology
from ipkeeper.testing.labtools import LabServer

VIP = "198.18.0.50"


def count(servers: list[LabServer], since: int) -> dict[str, int]:
    """Membership deaths, failovers and check failures in the logs after event id `since`."""
    totals = {"path down": 0, "peer declared dead": 0, "failover": 0, "check failed": 0}
    for server in servers:
        for event in server.api("GET", f"/events?limit=10000&after={since}")["events"]:
            if event["kind"] == "path" and " down" in event["message"]:
                totals["path down"] += 1
            elif event["kind"] == "membership" and "dead" in event["message"]:
                totals["peer declared dead"] += 1
            elif event["kind"] == "failover":
                totals["failover"] += 1
            elif event["kind"] == "check-failed":
                totals["check failed"] += 1
    return totals


def last_event(server: LabServer) -> int:
    """The id of the newest event."""
    events = server.api("GET", "/events?limit=1")["events"]
    return int(events[-1]["id"]) if events else 0


def soak(lab: Topology, seconds: float, hogs: int) -> None:
    """Print the counts for an idle period and a busy one."""
    servers = [LabServer(node) for node in lab.servers]
    s1 = servers[0]
    s1.api("POST", "/resources/ip", {"address": VIP, "netmask": "24"})
    s1.api("POST", f"/resources/ip-{VIP}/extend", {"target": "s2"})
    for label, load in (("idle", 0), (f"{hogs} busy processes on {_cores()} cores", hogs)):
        marks = [last_event(s) for s in servers]
        running = [
            subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(load)
        ]
        try:
            time.sleep(seconds)
        finally:
            for hog in running:
                hog.kill()
                hog.wait()
        totals = {k: 0 for k in ("path down", "peer declared dead", "failover", "check failed")}
        for server, mark in zip(servers, marks, strict=True):
            for key, value in count([server], mark).items():
                totals[key] += value
        figures = ", ".join(f"{k}: {v}" for k, v in totals.items())
        print(f"{label}, {seconds:g} s: {figures}", flush=True)


def _cores() -> int:
    import os

    return os.cpu_count() or 1


def main() -> None:
    """Run the soak in a fresh lab."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--hogs", type=int, default=4)
    args = parser.parse_args()
    control.down()
    lab = control.up(2)
    try:
        soak(lab, args.seconds, args.hogs)
    finally:
        control.down()


if __name__ == "__main__":
    main()
