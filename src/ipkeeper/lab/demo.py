"""`ipkeeper lab demo` (what `make demo` runs): a VIP fails over while a client watches.

The story, in under a minute: build the lab; create a VIP on s1 and extend it
to s2; a client asks the VIP every 10 ms which server answers; s1 crashes
(cables pulled, daemon killed); the client reports how long the VIP was
silent; s1 comes back and the VIP moves home (automatic switchback); the lab
is removed. Every command shown is the real CLI, run on that server.
"""

from __future__ import annotations

import shlex
import sys
import time

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ipkeeper.lab import control, faults
from ipkeeper.lab.echo import ECHO_PORT
from ipkeeper.lab.prober import Prober
from ipkeeper.lab.topology import Topology
from ipkeeper.testing import wait_until
from ipkeeper.testing.labtools import LabServer, holders

VIP = "198.18.0.50"
TAG = f"ip-{VIP}"


class Narrator:
    """Runs the demo's commands on lab servers and tells what happens."""

    def __init__(self, console: Console, lab: Topology) -> None:
        self.console = console
        self.lab = lab
        self.servers = {n.name: LabServer(n) for n in lab.servers}

    def say(self, text: str) -> None:
        """One line of the story."""
        self.console.print(f"\n[bold]{text}[/bold]")

    def run(self, server: str, *args: str, degraded_ok: bool = False) -> str:
        """Run `ipkeeper ARGS` on a server, show it and its output; stop the demo if it fails.

        With `degraded_ok`, a `status` that reports a degraded cluster (exit 4
        and up) is shown, not fatal: the story tells what it says.
        """
        self.console.print(f"[cyan]{server}$ ipkeeper {shlex.join(args)}[/cyan]")
        proc = self.servers[server].cli(*args)
        output = (proc.stdout + proc.stderr).rstrip()
        if output:
            self.console.print(output, markup=False, highlight=False)
        if proc.returncode != 0 and not (degraded_ok and proc.returncode >= 4):
            raise RuntimeError(f"ipkeeper {' '.join(args)} failed on {server}")
        return proc.stdout

    def where(self) -> str:
        """Which servers hold the VIP now."""
        found = holders(list(self.servers.values()), VIP)
        return ", ".join(found) or "nobody"

    def events(self, server: str, since: int) -> None:
        """Show what a server's event log says happened since an event id."""
        for event in self.servers[server].events(TAG, after=since):
            self.console.print(
                f"  [dim]{server}[/dim] {escape(event['kind'])}: {escape(event['message'])}"
            )


def watch_crash(n: Narrator, prober: Prober) -> tuple[float, float]:
    """Crash s1 and measure what the client saw: (longest silence, time to s2's first answer)."""
    s2 = n.servers["s2"]
    since = s2.mark()
    n.say("s1 crashes: both cables pulled, its daemon killed.")
    crash_at = time.monotonic()
    faults.crash(n.lab.node("s1"))
    wait_until(lambda: prober.first_from("s2", crash_at), 10, message="an answer from s2")
    time.sleep(0.3)
    first = prober.first_from("s2", crash_at) or crash_at
    silence = prober.longest_silence(crash_at - 0.02, time.monotonic())
    n.console.print(
        f"client: the VIP was silent for [bold]{silence * 1000:.0f} ms[/bold]; "
        f"s2 answered {(first - crash_at) * 1000:.0f} ms after the crash; "
        f"answers from s1 since then: {prober.answered_by('s1', first)}"
    )
    n.events("s2", since)
    return silence, first - crash_at


def story(n: Narrator) -> dict[str, object]:
    """The demo proper; what the client saw and where the VIP ended up."""
    n.say("A VIP on s1, extended to s2 (priority 10), moving back home by itself after a failover.")
    n.run(
        "s1",
        "create",
        "ip",
        "--address",
        VIP,
        "--netmask",
        "255.255.255.0",
        "--switchback",
        "automatic",
    )
    n.run("s1", "extend", TAG, "--target", "s2", "--target-priority", "10")
    n.run("s1", "status")
    for node in n.lab.servers:
        control.spawn(
            node,
            f"echo-{node.name}",
            [sys.executable, "-m", "ipkeeper.lab.echo", node.name, str(ECHO_PORT)],
        )
    n.say(f"The client asks {VIP} every 10 ms which server answers.")
    prober = Prober(n.lab.node("client"), VIP).start()
    try:
        wait_until(lambda: prober.first_from("s1", 0.0), 5, message="an answer from s1")
        n.console.print(f"client: {VIP} answers from s1")
        silence, _ = watch_crash(n, prober)
        n.say(
            "s1 comes back: cables in, daemon restarted; the VIP moves home (automatic "
            "switchback, once s1 has been up SWITCHBACK_DELAY, 5 s)."
        )
        since = n.servers["s2"].mark()
        back_at = time.monotonic()
        faults.recover(n.lab.node("s1"))
        wait_until(lambda: prober.first_from("s1", back_at), 20, message="the VIP back on s1")
        time.sleep(0.3)
        home = prober.first_from("s1", back_at) or back_at
        moving = prober.longest_silence(back_at, time.monotonic())
        n.console.print(
            f"client: answers from s1 again; the move home silenced the VIP for {moving * 1000:.0f} ms; "
            f"answers from s2 since then: {prober.answered_by('s2', home)}"
        )
        n.events("s2", since)
    finally:
        prober.stop()
    n.run("s2", "status", degraded_ok=True)
    where = n.where()
    n.say(
        f"The VIP is held by: {where}. Failover outage seen by the client: {silence * 1000:.0f} ms."
    )
    return {"ok": where == "s1", "failover_silence_ms": round(silence * 1000), "holder": where}


def run_demo(console: Console) -> dict[str, object]:
    """Run the demo, narrating on `console`; returns what it measured (`ok` says if all behaved)."""
    started = time.monotonic()
    console.print(
        "[bold]ipkeeper demo[/bold]: building a lab of network namespaces (2 servers, a router, a client)"
    )
    try:
        lab = control.up(2)
        table = Table(show_header=True)
        for column in ("node", "addresses"):
            table.add_column(column)
        for node in lab.nodes:
            table.add_row(node.name, ", ".join(str(a) for p in node.ports for a in p.addresses))
        console.print(table)
        outcome = story(Narrator(console, lab))
    except Exception as exc:  # the demo reports any failure in one line, then cleans up
        console.print(f"[red]demo failed: {escape(str(exc))}[/red]")
        outcome = {"ok": False, "error": str(exc)}
    finally:
        control.down()
        console.print(f"\nlab removed; the demo took {time.monotonic() - started:.0f} s")
    return outcome | {"seconds": round(time.monotonic() - started, 1)}
