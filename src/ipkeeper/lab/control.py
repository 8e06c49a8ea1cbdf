"""Bring the whole lab up and down: namespaces, then the processes inside them.

The lab keeps its run-time files under one directory (IPKEEPER_LAB_DIR,
default /run/ipkeeper-lab): the server count, and a PID file for every
process it starts. `down` stops those processes by PID, then any process still
inside a lab namespace (only the lab puts processes there), then removes the
namespaces and the directory, so it also cleans up after an interrupted `up`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from ipkeeper.lab import build
from ipkeeper.lab import netns as ns
from ipkeeper.lab.topology import Node, Topology, build_topology, is_lab_namespace

Progress = build.Progress


def lab_dir() -> Path:
    """The directory holding the lab's run-time files."""
    return Path(os.environ.get("IPKEEPER_LAB_DIR", "/run/ipkeeper-lab"))


class LabError(Exception):
    """A lab command that cannot be done, with the field and reason."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def current_topology() -> Topology | None:
    """The topology of the lab that is up (or half up), or None when there is none."""
    servers = 0
    state = lab_dir() / "lab.json"
    if state.exists():
        servers = int(json.loads(state.read_text())["servers"])
    else:
        names = [n for n in build.lab_namespaces() if n.startswith("ipk-s") and n != "ipk-sw"]
        servers = max((int(n[5:]) for n in names), default=0)
    if servers == 0 and not build.lab_namespaces():
        return None
    return build_topology(max(servers, 1))


def up(servers: int = 2, progress: Progress = build._quiet, daemons: bool = True) -> Topology:
    """Create the lab with `servers` servers, completing a partial one, daemons running."""
    existing = current_topology()
    if existing is not None and len(existing.servers) > servers:
        raise LabError(
            "servers",
            f"the lab already has {len(existing.servers)} servers; run 'ipkeeper lab down' first",
        )
    topology = build_topology(servers)
    directory = lab_dir()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "pids").mkdir(exist_ok=True)
    (directory / "lab.json").write_text(json.dumps({"servers": servers}))
    build.up(topology, progress)
    if daemons:
        from ipkeeper.lab import daemons as lab_daemons

        lab_daemons.write_configs(topology)
        lab_daemons.start_all(topology)
        progress("daemons")
    return topology


def spawn(node: Node, name: str, argv: Sequence[str], env: dict[str, str] | None = None) -> int:
    """Start `argv` inside `node`'s namespace, log to the lab directory, record its PID."""
    directory = lab_dir()
    with open(directory / f"{name}.log", "ab") as log:
        launcher = subprocess.run(
            [sys.executable, "-m", "ipkeeper.lab.nsexec", "--detach", node.namespace, "--", *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            env={**os.environ, **(env or {})},
            check=True,
            timeout=30,
        )
    pid = int(launcher.stdout)
    (directory / "pids" / f"{name}.pid").write_text(str(pid))
    return pid


def recorded_pids() -> dict[str, int]:
    """The PIDs of the processes the lab started, by name."""
    pids = {}
    for path in sorted((lab_dir() / "pids").glob("*.pid")):
        try:
            pids[path.stem] = int(path.read_text())
        except (OSError, ValueError):
            continue
    return pids


def stop(name: str, grace: float = 3.0) -> None:
    """Stop the lab process recorded as `name` (no error if it is gone)."""
    pidfile = lab_dir() / "pids" / f"{name}.pid"
    try:
        pid = int(pidfile.read_text())
    except (OSError, ValueError):
        return
    ns.terminate([pid], grace)
    pidfile.unlink(missing_ok=True)


def down(progress: Progress = build._quiet) -> None:
    """Remove the lab entirely: its processes, namespaces and run-time files."""
    ns.terminate(recorded_pids().values())
    names = [n for n in build.lab_namespaces() if is_lab_namespace(n)]
    stragglers = ns.pids_in(names)
    if stragglers:
        progress(f"stopping {len(stragglers)} process(es) left in the lab")
        ns.terminate(stragglers, grace=1.0)
    build.remove_namespaces(progress)
    shutil.rmtree(lab_dir(), ignore_errors=True)


def server_env(node: Node) -> dict[str, str]:
    """Environment for commands run on a lab server (which daemon the CLI talks to)."""
    return {"IPKEEPER_SOCKET": str(lab_dir() / node.name / "api.sock")}
