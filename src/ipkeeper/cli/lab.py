"""`ipkeeper lab`: the namespace lab of SPEC.md section 5 (R34)."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import click

from ipkeeper.cli.output import console, emit_json, err_console, fail, json_option
from ipkeeper.lab.topology import MAX_SERVERS, Topology

if TYPE_CHECKING:
    from rich.table import Table

# ipkeeper.lab.control (pyroute2) and Rich are imported by the commands that use
# them: `ipkeeper --help` and every other command start without them.


def _require_root() -> None:
    if os.geteuid() != 0:
        fail("lab", "needs root (it creates network namespaces)")


def topology_table(topology: Topology) -> Table:
    """A table of every node, namespace, interface and address."""
    from rich.table import Table

    table = Table(title="ipkeeper lab")
    for column in ("node", "namespace", "interface", "MAC", "addresses"):
        table.add_column(column)
    for node in topology.nodes:
        for port in node.ports:
            addresses = ", ".join(str(a) for a in port.addresses)
            table.add_row(node.name, node.namespace, port.ifname, port.mac, addresses)
    return table


@click.group("lab")
def lab() -> None:
    """Build a whole cluster in network namespaces on this machine."""


@lab.command("up")
@click.option("--servers", default=2, show_default=True, type=click.IntRange(1, MAX_SERVERS))
@json_option
def lab_up(servers: int, as_json: bool) -> None:
    """Create the lab (idempotent: completes a partial lab)."""
    _require_root()
    from ipkeeper.lab import control

    try:
        topology = control.up(servers, progress=lambda s: None if as_json else console().print(s))
    except control.LabError as exc:
        fail(exc.field, exc.reason)
    if as_json:
        emit_json({"namespaces": list(topology.namespaces), "servers": len(topology.servers)})
    else:
        console().print(topology_table(topology))


@lab.command("down")
@json_option
def lab_down(as_json: bool) -> None:
    """Remove every lab namespace and process, even after an interrupted `up`."""
    _require_root()
    from ipkeeper.lab import control

    control.down(progress=lambda s: None if as_json else console().print(s))
    if as_json:
        emit_json({"down": True})


@lab.command(
    "exec", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False}
)
@click.option(
    "--json", "as_json", is_flag=True, help="Accepted for uniformity; the output is COMMAND's own."
)
@click.argument("name")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def lab_exec(as_json: bool, name: str, command: tuple[str, ...]) -> None:
    """Run COMMAND inside lab node NAME (s1..sN, router, client)."""
    _require_root()
    from ipkeeper.lab import control

    topology = control.current_topology()
    if topology is None:
        fail("lab", "is not up; run 'ipkeeper lab up'")
    try:
        node = topology.node(name)
    except KeyError as exc:
        fail("name", str(exc.args[0]))
    argv = list(command[1:] if command[0] == "--" else command)
    if not argv:
        fail("command", "missing; usage: ipkeeper lab exec NAME -- CMD...")
    env = dict(os.environ)
    # The ipkeeper commands of this installation come first on PATH in the lab.
    env["PATH"] = os.pathsep.join(
        [os.path.dirname(sys.executable), env.get("PATH", "/usr/bin:/bin")]
    )
    if node.is_server:
        env.update(control.server_env(node))
    from ipkeeper.lab.nsexec import exec_in

    try:
        exec_in(node.namespace, argv, env)
    except OSError as exc:
        fail("command", f"{argv[0]}: {exc.strerror or exc}")


@lab.command("demo")
@json_option
def lab_demo(as_json: bool) -> None:
    """Bring the lab up, fail a VIP over while a client watches, and take it down again."""
    _require_root()
    from ipkeeper.lab.demo import run_demo

    outcome = run_demo(
        err_console() if as_json else console()
    )  # with --json the story goes to stderr
    if as_json:
        emit_json(outcome)
    raise SystemExit(0 if outcome.get("ok") else 1)
