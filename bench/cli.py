"""How long the `ipkeeper` command takes, start to exit, as a script or a person sees it.

    .venv/bin/python bench/cli.py [--runs 20]

Builds a two-server lab with a VIP on s1 extended to s2 and runs the installed
`ipkeeper` entry point against s1's daemon RUNS times for each command:
`--help`, `status`, `status --json`, `status --brief`, `check`. Prints the
median, min and max wall time of each, and the modules that cost the most to
import for `status`. Modules are byte-compiled first, as an installation has
them (PYTHONDONTWRITEBYTECODE is dropped for these runs).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from ipkeeper.lab import control
from ipkeeper.lab.topology import Topology
from ipkeeper.testing.labtools import LabServer

VIP = "198.18.0.50"
IPKEEPER = Path(sys.executable).parent / "ipkeeper"
COMMANDS = (
    ("--help",),
    ("status",),
    ("status", "--json"),
    ("status", "--brief"),
    ("check",),
)


def timed(argv: list[str], env: dict[str, str]) -> float:
    """Seconds from start to exit of one run (which must succeed)."""
    started = time.perf_counter()
    subprocess.run(argv, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def heaviest_imports(env: dict[str, str], count: int = 6) -> list[tuple[str, float]]:
    """The top-level imports that cost `status` the most, cumulative milliseconds."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", str(IPKEEPER), "status"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    found = []
    for line in proc.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit() and not parts[2].startswith("  "):
            found.append((parts[2].strip(), int(parts[1]) / 1000))
    return sorted(found, key=lambda item: -item[1])[:count]


def bench(lab: Topology, runs: int) -> None:
    """Print the timings of each command against s1."""
    s1 = LabServer(lab.node("s1"))
    s1.api("POST", "/resources/ip", {"address": VIP, "netmask": "24"})
    s1.api("POST", f"/resources/ip-{VIP}/extend", {"target": "s2"})
    env = {**os.environ, "IPKEEPER_SOCKET": str(s1.socket), "COLUMNS": "100"}
    # As installed, with byte-compiled modules (the warm-up run writes them).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    print(f"{IPKEEPER} against s1's daemon, {runs} runs each, {os.cpu_count()} cores:")
    for args in COMMANDS:
        argv = [str(IPKEEPER), *args]
        timed(argv, env)  # warm the page cache
        seconds = [timed(argv, env) for _ in range(runs)]
        ms = [s * 1000 for s in seconds]
        print(
            f"  ipkeeper {' '.join(args):<16} median {statistics.median(ms):6.1f} ms"
            f"  (min {min(ms):.1f}, max {max(ms):.1f})",
            flush=True,
        )
    python = [timed([sys.executable, "-c", "pass"], env) * 1000 for _ in range(runs)]
    print(f"  (python -c pass: median {statistics.median(python):.1f} ms)")
    heavy = ", ".join(f"{name} {ms:.0f} ms" for name, ms in heaviest_imports(env))
    print(f"  heaviest imports of `status`: {heavy}")


def main() -> None:
    """Run the benchmark in a fresh lab."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    control.down()
    lab = control.up(2)
    try:
        bench(lab, args.runs)
    finally:
        control.down()


if __name__ == "__main__":
    main()
