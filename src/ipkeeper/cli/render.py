"""Human output of the CLI: Rich tables, states coloured."""

from __future__ import annotations

import datetime
from typing import Any

from rich.markup import escape
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
                text += f" [yellow]{escape(str(inst['busy']))}[/yellow]"
            if inst.get("stale"):
                text += " [dim](last report)[/dim]"
            cells.append(text)
        resources.add_row(res["tag"], res["type"], ", ".join(res["children"]) or "-", *cells)
    quorum = data.get("quorum")
    if quorum:
        verdict = "" if quorum["has_quorum"] else " [red]NO QUORUM: nothing is taken over[/red]"
        note = f" ({escape(quorum['note'])})" if quorum.get("note") else ""
        servers.caption = (
            f"quorum: {quorum['mode']}, {quorum['votes']} of {quorum['of']} votes{verdict}{note}"
        )
    return [servers, resources]


def security_line(data: dict[str, Any]) -> str | None:
    """One line on how the API and the cluster keys are secured, from `status`."""
    security = data.get("security")
    if not security:
        return None
    api = security["api"]
    parts = []
    if api.get("listen"):
        if api["tls"]:
            cert = api.get("certificate") or {}
            until = str(cert.get("not_after", "?"))[:10]
            parts.append(
                f"API https://{api['listen']} (certificate SHA-256 {cert.get('sha256', '?')[:23]}…, "
                f"until {until}; tokens: {', '.join(api['roles'])})"
            )
        else:
            parts.append(f"[red]API plain http://{api['listen']} (insecure = true)[/red]")
    else:
        parts.append("API on the local socket only")
    keys = security.get("cluster_keys")
    if keys:
        parts.append(
            f"cluster key {keys['primary']} (accepted: {', '.join(map(str, keys['accepted']))})"
        )
        if keys.get("error"):
            parts.append(f"[red]key file refused: {escape(keys['error'])}[/red]")
    return "; ".join(parts)


def properties_table(data: dict[str, Any]) -> Table:
    """R12: one resource's properties on one server."""
    table = Table(title=f"{data['tag']} on {data['server']}", show_header=False)
    table.add_column("property", style="bold")
    table.add_column("value")
    for key, value in data.items():
        if key in ("tag", "server", "since", "pending") or value is None:
            continue
        table.add_row(key.replace("_", " "), _property(key, value))
    return table


def _property(key: str, value: Any) -> str:
    """One property as Rich markup; text from the daemon (reasons, command output) escaped."""
    if key == "state":
        return state_text(value)
    if key == "last_check":
        return ("ok: " if value["ok"] else "[red]failed[/red]: ") + escape(value["reason"])
    if key == "equivalents":
        return ", ".join(
            f"{e['server']}: {escape(e['tag'])} (priority {e['priority']})" for e in value
        )
    if isinstance(value, list):
        return escape(", ".join(str(v) for v in value)) or "-"
    return escape(str(value))


def event_line(event: dict[str, Any]) -> str:
    """One event as `time server [tag] kind: message`."""
    when = datetime.datetime.fromtimestamp(event["ts"]).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    tag = f" [{event['tag']}]" if event.get("tag") else ""
    return f"{when} {event['server']}{tag} {event['kind']}: {event['message']}"
