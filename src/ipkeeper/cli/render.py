"""Human output of the CLI: Rich tables, states coloured."""

from __future__ import annotations

import datetime
from typing import Any

from rich.table import Table

from ipkeeper.cli.output import state_text


def status_tables(data: dict[str, Any]) -> list[Table]:
    """Servers with their comm paths, then every resource's state per server."""
    servers = Table(title=f"servers (seen from {data['server']})")
    for column in ("server", "alive", "comm paths"):
        servers.add_column(column)
    for srv in data["servers"]:
        paths = ", ".join(
            f"{p['local']}->{p['remote']} {p['state']}"
            + (f" {p['rtt_ms']:.1f} ms" if p.get("rtt_ms") is not None else "")
            for p in srv.get("comm_paths", [])
        )
        alive = "[green]yes[/green]" if srv["alive"] else "[red]no[/red]"
        servers.add_row(
            srv["name"] + (" (this server)" if srv.get("local") else ""), alive, paths or "-"
        )
    names = [s["name"] for s in data["servers"]]
    resources = Table(title="resources")
    resources.add_column("tag")
    resources.add_column("type")
    resources.add_column("depends on")
    for name in names:
        resources.add_column(name)
    for res in data["resources"]:
        cells = []
        for name in names:
            inst = res["servers"].get(name)
            if inst is None:
                cells.append("[dim]-[/dim]")
                continue
            text = f"{state_text(inst.get('state'))} ({inst['priority']})"
            if inst.get("busy"):
                text += f" [yellow]{inst['busy']}[/yellow]"
            cells.append(text)
        resources.add_row(res["tag"], res["type"], ", ".join(res["children"]) or "-", *cells)
    return [servers, resources]


def properties_table(data: dict[str, Any]) -> Table:
    """R12: one resource's properties on one server."""
    table = Table(title=f"{data['tag']} on {data['server']}", show_header=False)
    table.add_column("property", style="bold")
    table.add_column("value")
    for key, value in data.items():
        if key in ("tag", "server", "since", "pending") or value is None:
            continue
        if key == "state":
            value = state_text(value)
        elif key == "last_check":
            value = ("ok: " if value["ok"] else "[red]failed[/red]: ") + value["reason"]
        elif key == "equivalents":
            value = ", ".join(
                f"{e['server']}: {e['tag']} (priority {e['priority']})" for e in value
            )
        elif isinstance(value, list):
            value = ", ".join(str(v) for v in value) or "-"
        table.add_row(key.replace("_", " "), str(value))
    return table


def event_line(event: dict[str, Any]) -> str:
    """One event as `time server [tag] kind: message`."""
    when = datetime.datetime.fromtimestamp(event["ts"]).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    tag = f" [{event['tag']}]" if event.get("tag") else ""
    return f"{when} {event['server']}{tag} {event['kind']}: {event['message']}"
