"""Watching the cluster: `status` (with exit codes, --brief, --watch), `check` for
monitoring systems, `events` across the cluster, and `tunables`."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from ipkeeper.cli import render
from ipkeeper.cli.base import daemon_command
from ipkeeper.cli.client import Client, DaemonError
from ipkeeper.cli.complete import complete_servers, complete_tags
from ipkeeper.cli.health import MEANINGS, Health, Level, assess
from ipkeeper.cli.output import console, emit_json, err_console, escape
from ipkeeper.cli.when import Since, stamp

# --follow asks again for this much before the newest event seen: another
# server's clock may be a little behind, or its event committed a little late.
OVERLAP = 5.0

STATUS_CODES = (
    "\b\nExit status: 0 all is well, 1 no answer from the daemon, 2 bad usage; otherwise\n"
    "the sum of: " + ", ".join(f"{int(bit)} {text}" for bit, text in MEANINGS.items()) + "."
)


def _print_status(
    data: dict[str, Any], health: Health, as_json: bool, brief: bool, every: bool = False
) -> None:
    if as_json:
        click.echo(json.dumps(data, default=str))
    elif brief:
        for line in render.brief_lines(data, health):
            click.echo(line)
    else:
        for table in render.status_tables(data, every):
            console().print(table)
        for said in (render.guard_line(data), render.security_line(data)):
            if said:
                console().print(said)
        if health.problems:
            console().print(f"[red]degraded:[/red] {escape(health.summary())}")


def _watch_frame(client: Client, brief: bool, interval: float) -> tuple[Any, int]:
    """One refresh of `status --watch`: what to show and the exit code it stands for."""
    from rich.console import Group
    from rich.text import Text

    now = stamp(time.time())
    try:
        data = client.request("GET", "/status")
    except DaemonError as exc:
        return Text(f"{now}: no answer: {exc.reason}", style="bold red"), 1
    health = assess(data)
    verdict = "healthy" if not health.problems else f"DEGRADED: {health.summary()}"
    head = Text(f"{data['server']} at {now}, every {interval:g} s (Ctrl-C to stop): {verdict}")
    head.stylize("bold red" if health.problems else "bold green")
    if brief:
        body: list[Any] = [Text(line) for line in render.brief_lines(data, health)]
    else:
        body = list(render.status_tables(data))
    return Group(head, *body), health.exit_code


def _watch(client: Client, as_json: bool, brief: bool, interval: float) -> int:
    code = 0
    try:
        if as_json or not console().is_terminal:
            while True:  # one snapshot after another (JSON: one object per line)
                if as_json:
                    try:
                        data = client.request("GET", "/status")
                        code = assess(data).exit_code
                        click.echo(json.dumps(data, default=str))
                    except DaemonError as exc:
                        code = 1
                        click.echo(
                            json.dumps({"error": {"field": exc.field, "reason": exc.reason}})
                        )
                else:
                    frame, code = _watch_frame(client, brief, interval)
                    console().print(frame)
                    console().print()
                time.sleep(interval)  # the refresh period, not a synchronisation
        from rich.live import Live

        with Live(console=console(), auto_refresh=False, screen=True) as live:
            while True:
                frame, code = _watch_frame(client, brief, interval)
                live.update(frame, refresh=True)
                time.sleep(interval)
    except KeyboardInterrupt:
        pass  # Ctrl-C is how one stops watching
    return code


@daemon_command(None, "status", epilog=STATUS_CODES)
@click.option("--brief", "-b", is_flag=True, help="One line for the cluster, one per hierarchy.")
@click.option("--watch", "-w", is_flag=True, help="Refresh until Ctrl-C, like crm_mon.")
@click.option(
    "--interval",
    type=click.FloatRange(0.2, 3600),
    default=2.0,
    show_default=True,
    help="Seconds between refreshes with --watch.",
)
@click.option(
    "--all", "every", is_flag=True, help="List every resource, even in large hierarchies."
)
def status(
    client: Client, as_json: bool, brief: bool, watch: bool, interval: float, every: bool
) -> None:
    """Servers, comm paths, and each resource's state per server, since when and why."""
    if watch:
        raise SystemExit(_watch(client, as_json, brief, interval))
    data = client.call("GET", "/status")
    health = assess(data)
    if as_json:
        emit_json(data)
    else:
        _print_status(data, health, False, brief, every)
    raise SystemExit(health.exit_code)


class PluginUsageError(click.UsageError):
    """Bad usage of a monitoring plugin: UNKNOWN."""

    exit_code = int(Level.UNKNOWN)


class PluginCommand(click.Command):
    """A monitoring plugin: bad usage is UNKNOWN (3), not 2, which would mean CRITICAL."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Parse as usual; a usage error exits with UNKNOWN."""
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            raise PluginUsageError(exc.message, exc.ctx) from None


@daemon_command(None, "check", cls=PluginCommand)
@click.option(
    "--tag",
    "tags",
    multiple=True,
    shell_complete=complete_tags,
    help="Only these resources (servers, paths and quorum always count). Repeatable.",
)
@click.option("--timeout", type=click.FloatRange(0.1, 300), default=10.0, show_default=True)
def check(client: Client, as_json: bool, tags: tuple[str, ...], timeout: float) -> None:
    """One line for Nagios, Icinga, Zabbix: OK, WARNING or CRITICAL, with perfdata.

    \b
    Exit status: 0 OK, 1 WARNING (a server dead, a comm path down, an
    instance failed or unprotected: redundancy lost), 2 CRITICAL (a resource
    in service nowhere, quorum lost, or no answer from the daemon),
    3 UNKNOWN (bad usage, an unknown --tag).
    """
    client.timeout = timeout
    try:
        data = client.request("GET", "/status")
    except DaemonError as exc:
        click.echo(f"IPKEEPER CRITICAL - {exc.reason}")
        raise SystemExit(int(Level.CRITICAL)) from None
    known = {r["tag"] for r in data["resources"]} | {
        i["tag"] for r in data["resources"] for i in r["servers"].values()
    }
    unknown = sorted(set(tags) - known)
    if unknown:
        click.echo(f"IPKEEPER UNKNOWN - no resource {', '.join(unknown)}")
        raise SystemExit(int(Level.UNKNOWN))
    health = assess(data, tags)
    if as_json:
        emit_json(
            {
                "level": health.level.name,
                "code": int(health.level),
                "summary": health.summary(),
                "problems": [{"level": p.level.name, "text": p.text} for p in health.problems],
                "perfdata": health.perfdata(),
            }
        )
    else:
        click.echo(health.plugin_line())
    raise SystemExit(int(health.level))


def _fetch_events(client: Client, query: dict[str, Any]) -> dict[str, Any]:
    return client.call("GET", "/history", **query)


def _print_event(event: dict[str, Any], as_json: bool) -> None:
    click.echo(json.dumps(event) if as_json else render.event_line(event))


def _unreachable_notes(data: dict[str, Any]) -> None:
    for missing in data.get("unreachable", []):
        err_console().print(
            f"[yellow]note:[/yellow] no events from {escape(missing['server'])}: {escape(missing['reason'])}",
            soft_wrap=True,
        )


@daemon_command(None, "events")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events.")
@click.option("--limit", type=click.IntRange(1, 10000), default=50, show_default=True)
@click.option("--tag", shell_complete=complete_tags, help="Only this resource's events.")
@click.option(
    "--server",
    "servers",
    multiple=True,
    shell_complete=complete_servers,
    help="Only this server's events (repeatable); default: every server.",
)
@click.option(
    "--since", type=Since(), help="From this time on: 10m, 2h, 1d, 14:30, 2024-05-01 14:30."
)
@click.option("--kind", "kinds", multiple=True, help="Only events of this kind (repeatable).")
def events(
    client: Client,
    as_json: bool,
    follow: bool,
    limit: int,
    tag: str | None,
    servers: tuple[str, ...],
    since: float | None,
    kinds: tuple[str, ...],
) -> None:
    """Events of every server, merged by time (R29)."""
    query: dict[str, Any] = {
        "limit": limit,
        "tag": tag,
        "server": list(servers),
        "kind": list(kinds),
        "since": since,
    }
    data = _fetch_events(client, query)
    _unreachable_notes(data)
    if as_json and not follow:
        emit_json(data)  # one JSON document; with --follow, one object per line instead
        return
    seen = {(e["server"], e["id"]): e["ts"] for e in data["events"]}
    newest = max(seen.values(), default=time.time())
    for event in data["events"]:
        _print_event(event, as_json)
    if not follow:
        return
    try:
        while True:
            time.sleep(1.0)  # the polling period, not a synchronisation
            data = _fetch_events(client, {**query, "since": newest - OVERLAP, "limit": 10000})
            for event in data["events"]:
                key = (event["server"], event["id"])
                if key not in seen:
                    seen[key] = event["ts"]
                    newest = max(newest, event["ts"])
                    _print_event(event, as_json)
            seen = {k: ts for k, ts in seen.items() if ts >= newest - 2 * OVERLAP}
    except KeyboardInterrupt:
        return  # Ctrl-C is how one stops following


@daemon_command(None, "tunables")
def tunables(client: Client, as_json: bool) -> None:
    """Tunables in force, as lines for the tunables file, each with its source (R11)."""
    data = client.call("GET", "/tunables")
    if as_json:
        emit_json(data)
        return
    for line in render.tunables_lines(data):
        click.echo(line)
