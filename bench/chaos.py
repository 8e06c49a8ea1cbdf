"""Random faults, one after another, and the invariants checked after each.

    .venv/bin/python bench/chaos.py [--steps 40] [--seed N] [--servers 3 --quorum majority]

Two VIPs (one at home on s1, one on s2 with automatic switchback), each
extended to every server. Each step injects a random fault or repair (crash
and return, a cable pulled and put back, a daemon killed and restarted, a
switchover, an administrator's out-of-service while a server is down; and
issue 11's campaign: a daemon paused for 2 s, a LAN cable flapping ten times,
a database wiped and the daemon restarted, the state directory's disk full
until the next step, a rogue host announcing a VIP for 3 s, nobody on the LAN
answering pings for 3 s, and with three servers or more a partial partition,
two servers cut from each other at layer 2 until the next step),
waits for the cluster to settle, and checks: no VIP answered by two
reachable servers, every VIP held somewhere while a server that can hold it
is up (none that was taken out of service), and the servers' stores
agreeing. Prints each step and a summary; exits 1 on the first broken
invariant.
"""

from __future__ import annotations

import argparse
import random
import sys
import time

from ipkeeper.lab import control
from ipkeeper.testing import wait_until
from ipkeeper.testing.chaos import check, repair_all, run, setup
from ipkeeper.testing.labtools import LabServer


def main() -> None:
    """Run the random sequence in a fresh lab."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--servers", type=int, default=2, choices=(2, 3, 4))
    parser.add_argument("--quorum", default="none", choices=("none", "majority"))
    args = parser.parse_args()
    print(f"seed {args.seed}; {args.servers} servers; QUORUM={args.quorum}", flush=True)
    control.down()
    lab = control.up(args.servers)
    try:
        servers = {n.name: LabServer(n) for n in lab.servers}
        for server in servers.values():
            server.tune(QUORUM=args.quorum)
        setup(servers)
        failures = run(lab, random.Random(args.seed), args.steps)
        repair_all(lab)
        wait_until(lambda: check(lab, set(), set()) is None, 10, message="settled at the end")
    finally:
        control.down()
    print(
        f"{'no invariant broken' if not failures else 'an invariant broke'} in {args.steps} steps"
    )
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
