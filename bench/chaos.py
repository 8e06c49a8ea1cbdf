"""Random faults, one after another, and the invariants checked after each.

    .venv/bin/python bench/chaos.py [--steps 40] [--seed N]

Two servers hold two VIPs (one preferring each server, one with automatic
switchback). Each step injects a random fault or repair (crash and return,
a cable pulled and put back, a daemon killed and restarted, a switchover),
waits for the cluster to settle, and checks: no VIP answered by two
reachable servers, every VIP held somewhere while a server that can hold it
is up, and both servers' stores agreeing. Prints each step and a summary;
exits 1 on the first broken invariant.
"""

from __future__ import annotations

import argparse
import random
import sys
import time

from ipkeeper.lab import control, daemons, faults
from ipkeeper.lab.topology import Topology
from ipkeeper.testing import wait_until
from ipkeeper.testing.labtools import LabServer

VIPS = {"198.18.0.50": ("s1", "intelligent"), "198.18.0.51": ("s2", "automatic")}


def setup(servers: dict[str, LabServer]) -> None:
    """Each VIP created on its home server and extended to the other."""
    for vip, (home, switchback) in VIPS.items():
        other = "s2" if home == "s1" else "s1"
        servers[home].json(
            "create", "ip", "--address", vip, "--netmask", "24", "--switchback", switchback
        )
        servers[home].json("extend", f"ip-{vip}", "--target", other)


def reachable(lab: Topology, cut: set[str]) -> list[LabServer]:
    """The servers whose cables are in."""
    return [LabServer(n) for n in lab.servers if n.name not in cut]


def catalog(server: LabServer) -> list[tuple[str, list[tuple[str, int]]]]:
    """The definitions a server holds."""
    return sorted(
        (r["tag"], sorted((n, i["priority"]) for n, i in r["servers"].items()))
        for r in server.status()["resources"]
    )


def check(lab: Topology, cut: set[str], dead: set[str]) -> str | None:
    """The first broken invariant, or None."""
    up = reachable(lab, cut)
    for vip in VIPS:
        holding = [s.name for s in up if s.has_address(vip)]
        if len(holding) > 1:
            return f"{vip} held by {holding}"
        can_hold = [s for s in up if s.name not in dead]
        if can_hold and not holding:
            return f"{vip} held by nobody while {[s.name for s in can_hold]} are up"
    live = [s for s in up if s.name not in dead]
    if len(live) == 2 and catalog(live[0]) != catalog(live[1]):
        return "the two stores disagree"
    return None


FAULTS = ("crash", "cut LAN cable", "cut both cables", "kill daemon", "switch over")


def inject(lab: Topology, action: str, name: str, cut: set[str], dead: set[str], vip: str) -> None:
    """Do `action` to server `name`, and note what it leaves cut off or dead."""
    node = lab.node(name)
    if action == "crash":
        faults.crash(node)
        cut.add(name)
        dead.add(name)
    elif action == "cut LAN cable":
        faults.unplug(node, "eth0")
        cut.add(name)
    elif action == "cut both cables":
        faults.unplug(node)
        cut.add(name)
    elif action == "kill daemon":
        daemons.kill(node)
        dead.add(name)
    elif action == "switch over":
        LabServer(node).cli("in-service", f"ip-{vip}", "--server", name)
    else:  # repair
        faults.plug(node)
        daemons.start(node)
        cut.discard(name)
        dead.discard(name)


def run(lab: Topology, rng: random.Random, steps: int) -> int:
    """The random sequence; the number of broken invariants (stops at the first)."""
    cut: set[str] = set()
    dead: set[str] = set()
    for step in range(steps):
        if cut | dead:
            action, name = "repair", sorted(cut | dead)[0]
        else:
            action, name = rng.choice(FAULTS), rng.choice(["s1", "s2"])
        inject(lab, action, name, cut, dead, rng.choice(list(VIPS)))
        time.sleep(2.0)  # let it settle: heartbeats, takeovers, switchbacks (not a synchronisation)
        broken = check(lab, cut, dead)
        print(
            f"{step:3d} {action:16s} {name}: {'ok' if broken is None else 'BROKEN: ' + broken}",
            flush=True,
        )
        if broken:
            for server in reachable(lab, cut | dead):
                for event in server.events()[-12:]:
                    print(f"      {server.name} {event['kind']}: {event['message']}")
            return 1
    return 0


def main() -> None:
    """Run the random sequence in a fresh lab."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args()
    print(f"seed {args.seed}", flush=True)
    control.down()
    lab = control.up(2)
    try:
        setup({n.name: LabServer(n) for n in lab.servers})
        failures = run(lab, random.Random(args.seed), args.steps)
        for node in lab.servers:
            faults.plug(node)
            daemons.start(node)
        wait_until(lambda: check(lab, set(), set()) is None, 10, message="settled at the end")
    finally:
        control.down()
    print(
        f"{'no invariant broken' if not failures else 'an invariant broke'} in {args.steps} steps"
    )
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
