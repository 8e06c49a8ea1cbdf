"""Human output of the CLI: Rich tables (states coloured), one-line summaries, events."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Any

from ipkeeper.cli.health import IN_SERVICE, Health, live_instances
from ipkeeper.cli.output import escape, state_text
from ipkeeper.cli.when import stamp

if TYPE_CHECKING:
    from rich.table import Table


def _servers_table(data: dict[str, Any]) -> Table:
    from rich.table import Table

    servers = Table(title=f"servers (seen from {data['server']})")
    for column in ("server", "alive", "comm paths"):
        servers.add_column(column)
    for srv in data["servers"]:
        paths = "\n".join(
            f"{p['local']}->{p['remote']} {p['state']}"
            + (f" {p['rtt_ms']:.1f} ms" if p.get("rtt_ms") is not None else "")
            + (f" since {stamp(p['since'])}" if p.get("state") != "up" and p.get("since") else "")
            + (f": {p['reason']}" if p.get("reason") else "")
            for p in srv.get("comm_paths", [])
        )
        alive = "[green]yes[/green]" if srv["alive"] else "[red]no[/red]"
        name = srv["name"] + (" (this server)" if srv.get("local") else "")
        if srv.get("version_mismatch"):
            name += f"\n[red]ipkeeper {escape(str(srv.get('version')))}: not this server's[/red]"
        servers.add_row(
            name + (" (witness)" if srv.get("witness") else ""), alive, escape(paths) or "-"
        )
    quorum = data.get("quorum")
    if quorum:
        verdict = "" if quorum["has_quorum"] else " [red]NO QUORUM: nothing is taken over[/red]"
        note = f" ({escape(quorum['note'])})" if quorum.get("note") else ""
        servers.caption = (
            f"quorum: {quorum['mode']}, {quorum['votes']} of {quorum['of']} votes{verdict}{note}"
        )
    return servers


def instance_cell(inst: dict[str, Any]) -> str:
    """One instance as status shows it: state (priority), since when, and why."""
    text = f"{state_text(inst.get('state'))} ({inst['priority']})"
    if inst.get("busy"):
        text += f" [yellow]{escape(str(inst['busy']))}[/yellow]"
    if inst.get("stale"):
        text += " [dim](last report)[/dim]"
    if inst.get("since"):
        text += f"\n[dim]since {stamp(inst['since'])}[/dim]"
    if inst.get("reason"):
        text += f"\n[dim]{escape(str(inst['reason']))}[/dim]"
    return text


COLLAPSE = 12  # a hierarchy with more resources than this shows its dependents counted


def status_tables(data: dict[str, Any], every: bool = False) -> list[Table]:
    """Servers with their comm paths, then every resource's state per server; in a
    hierarchy of more than COLLAPSE resources (a group of a thousand VIPs), the roots
    and one line counting the others by state per server, unless `every`."""
    from rich.table import Table

    names = [s["name"] for s in data["servers"] if not s.get("witness")]
    resources = Table(title="resources", show_lines=True)
    resources.add_column("tag")
    resources.add_column("type")
    resources.add_column("depends on")
    for name in names:
        resources.add_column(name)
    groups = hierarchies(data)
    if every or all(len(g) <= COLLAPSE for g in groups):
        groups = [[res] for res in data["resources"]]
    for group in groups:
        shown = group if len(group) <= COLLAPSE else [r for r in group if not r["parents"]]
        for res in shown:
            cells = [
                instance_cell(inst) if (inst := res["servers"].get(name)) else "[dim]-[/dim]"
                for name in names
            ]
            children = res["children"]
            if len(group) > COLLAPSE and len(children) > 3:
                listed = f"{len(children)} resources"
            else:
                listed = ", ".join(children) or "-"
            resources.add_row(escape(res["tag"]), res["type"], escape(listed), *cells)
        rest = [r for r in group if r not in shown]
        if rest:
            types = ", ".join(sorted({r["type"] for r in rest}))
            cells = [_counted(rest, name) for name in names]
            resources.add_row(f"+ {len(rest)} more", types, "[dim](--all lists them)[/dim]", *cells)
    return [_servers_table(data), resources]


def _counted(resources: list[dict[str, Any]], server: str) -> str:
    """Many resources' states on one server: a count per state, naming the few that differ."""
    by_state: dict[str, list[str]] = {}
    for res in resources:
        inst = res["servers"].get(server)
        state = inst.get("state") if inst else None
        by_state.setdefault(state or "-", []).append(res["tag"])
    usual = max(by_state, key=lambda k: len(by_state[k]))
    parts = []
    for state, tags in sorted(by_state.items(), key=lambda kv: -len(kv[1])):
        text = f"{state_text(state) if state != '-' else '[dim]-[/dim]'} ×{len(tags)}"
        if state != usual:
            named = ", ".join(escape(t) for t in sorted(tags)[:3])
            text += f": {named}" + (", …" if len(tags) > 3 else "")
        parts.append(text)
    return "\n".join(parts)


def hierarchies(data: dict[str, Any]) -> list[list[dict[str, Any]]]:
    """The resources grouped by hierarchy (joined by dependencies), roots first."""
    by_tag = {r["tag"]: r for r in data["resources"]}
    seen: set[str] = set()
    groups = []
    for res in data["resources"]:
        if res["tag"] in seen:
            continue
        group, todo = [], [res["tag"]]
        while todo:
            tag = todo.pop()
            if tag in seen or tag not in by_tag:
                continue
            seen.add(tag)
            group.append(by_tag[tag])
            todo.extend(by_tag[tag]["parents"] + by_tag[tag]["children"])
        groups.append(sorted(group, key=lambda r: (bool(r["parents"]), r["tag"])))
    return groups


def _hierarchy_state(group: list[dict[str, Any]], server: str) -> str | None:
    states = [r["servers"].get(server, {}).get("state") for r in group]
    if any(s == "OSF" for s in states):
        return "OSF"
    if all(s == "ISP" for s in states):
        return "ISP"
    if any(s in IN_SERVICE for s in states):
        return "ISU"
    return "OSU" if all(s == "OSU" for s in states) else None


def brief_line(group: list[dict[str, Any]]) -> str:
    """One hierarchy on one line: where it is in service, since when and why, the others' states."""
    roots = [r["tag"] for r in group if not r["parents"]] or [group[0]["tag"]]
    if len(group) > COLLAPSE:
        name = f"{' > '.join(roots)} (+{len(group) - len(roots)} resources)"
    else:
        name = " > ".join(r["tag"] for r in group)
    live: dict[str, dict[str, Any]] = {}
    for res in group:
        for server, inst in live_instances(res).items():
            live.setdefault(server, inst)
    holders = [s for s in sorted(live) if _hierarchy_state(group, s) in IN_SERVICE]
    others = ", ".join(
        f"{s} {_hierarchy_state(group, s) or '-'}" for s in sorted(live) if s not in holders
    )
    if holders:
        where = holders[0]
        since = max((r["servers"][where].get("since") or 0 for r in group), default=0) or None
        head = f"{_hierarchy_state(group, where)} on {where}"
        head += f" since {stamp(since)}" if since else ""
        reason = group[0]["servers"][where].get("reason")
    else:
        head = "in service nowhere"
        reason = next((i.get("reason") for i in live.values() if i.get("reason")), "")
    tail = f" (standby: {others})" if others else ""
    return f"{name}: {head}{tail}" + (f": {reason}" if reason else "")


def brief_lines(data: dict[str, Any], health: Health) -> list[str]:
    """`status --brief`: the cluster in one line, then one line per hierarchy."""
    verdict = "healthy" if not health.problems else health.summary()
    quorum = data.get("quorum") or {}
    lines = [
        f"{data['server']}: {health.servers_alive}/{health.servers} servers alive, "
        f"{health.paths_up}/{health.paths} comm paths up, quorum {quorum.get('mode', '-')}: {verdict}"
    ]
    lines.extend(brief_line(group) for group in hierarchies(data))
    bare = guard_line(data, brief=True)
    return [*lines, bare] if bare else lines


def guard_line(data: dict[str, Any], brief: bool = False) -> str | None:
    """What keeps each hierarchy extended to two servers or more from running on both if
    the comm paths are cut, in one line (Rich markup; `brief`: plain text, and only the
    hierarchies nothing guards); None when there is nothing to say."""
    listed = [h for h in data.get("hierarchies", []) if len(h.get("servers", [])) > 1]
    if brief:
        listed = [h for h in listed if not h.get("guarded", True)]
    if not listed:
        return None
    by_guard: dict[str, list[str]] = {}
    for h in listed:
        by_guard.setdefault(h["guard"], []).append(h["tag"])
    parts = []
    for guard, tags in sorted(
        by_guard.items(), key=lambda kv: (kv[0].startswith("nothing"), kv[0])
    ):
        named = ", ".join(tags[:5]) + (f" and {len(tags) - 5} more" if len(tags) > 5 else "")
        part = f"{guard}: {named}"
        if not brief:
            part = escape(part)
            part = f"[red]{part}[/red]" if guard.startswith("nothing") else part
        parts.append(part)
    return "guarded against running on two servers by " + "; ".join(parts)


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
    from rich.table import Table

    table = Table(title=f"{data['tag']} on {data['server']}", show_header=False)
    table.add_column("property", style="bold")
    table.add_column("value")
    for key, value in data.items():
        if key in ("tag", "server", "pending") or value is None:
            continue
        table.add_row(key.replace("_", " "), _property(key, value))
    return table


def _property(key: str, value: Any) -> str:
    """One property as Rich markup; text from the daemon (reasons, command output) escaped."""
    if key == "state":
        return state_text(value)
    if key == "since":
        return stamp(value)
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
    """One event as `YYYY-MM-DD HH:MM:SS.mmm server [tag] kind: message`."""
    tag = f" [{event['tag']}]" if event.get("tag") else ""
    return f"{stamp(event['ts'], millis=True)} {event['server']}{tag} {event['kind']}: {event['message']}"


def tunable_value(value: Any) -> str:
    """A tunable's value in the tunables file's own syntax (0/1 for flags), shell-quoted."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return format(value, "g") if value == float(format(value, "g")) else repr(value)
    return shlex.quote(str(value))


def tunables_lines(data: dict[str, Any]) -> list[str]:
    """`ipkeeper tunables`: lines that can be pasted into the tunables file as they are."""
    lines = [f"# tunables in force, read from {data['file']}: these lines can go there as they are"]
    for item in data["tunables"]:
        source = " ".join(str(item["source"]).split())
        lines.append(f"{item['name']}={tunable_value(item['value'])}  # {source}")
    return lines
