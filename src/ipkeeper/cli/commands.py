"""The resource commands of `ipkeeper` (SPEC.md section 5); each talks to the local daemon."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ipkeeper.cli import render
from ipkeeper.cli.base import COMMANDS, daemon_command, done
from ipkeeper.cli.client import Client, segment
from ipkeeper.cli.complete import complete_servers, complete_tags
from ipkeeper.cli.output import console, emit_json, fail


@click.group("create")
def create() -> None:
    """Create a resource on a server (default: this one) and bring it in service there."""


COMMANDS.append(create)


priority_option = click.option(
    "--priority",
    type=int,
    default=1,
    show_default=True,
    help="This server's priority (1 = highest).",
)
switchback_option = click.option(
    "--switchback",
    type=click.Choice(["intelligent", "automatic"]),
    default="intelligent",
    show_default=True,
)
create_server_option = click.option(
    "--server",
    help="Server to create it on, in service there (any server of the cluster); default: this one.",
    shell_complete=complete_servers,
)


@daemon_command(None, "interfaces")
@click.option("--address", required=True)
@click.option("--netmask", required=True)
@click.option("--server", help="Default: this server.", shell_complete=complete_servers)
def interfaces(
    client: Client, as_json: bool, address: str, netmask: str, server: str | None
) -> None:
    """Valid interfaces for a VIP, best first (R3)."""
    data = client.call("GET", "/interfaces", address=address, netmask=netmask, server=server)
    if as_json:
        emit_json(data)
        return
    if not data["interfaces"]:
        fail("interface", f"no valid interface for {data['address']} on {data['server']}")
    for item in data["interfaces"]:
        console().print(f"{item['name']}\t{item['reason']}", markup=False)


@daemon_command(create, "ip")
@click.option("--address", required=True, help="IPv4/IPv6 address or host name.")
@click.option("--netmask", required=True, help="Dotted netmask or prefix length.")
@click.option("--interface", help="Default: the best valid interface.")
@click.option("--tag", help="Default: ip-<address>.")
@priority_option
@switchback_option
@create_server_option
@click.option(
    "--pinglist",
    multiple=True,
    metavar="ADDR",
    help="Ping ADDR instead of the broadcast (repeatable): the subnet's ping list on that "
    "server, set before the bring-up (R13).",
)
@click.option(
    "--no-broadcast-ping",
    "broadcast_ping",
    flag_value=False,
    default=True,
    help="No broadcast ping for this resource when its subnet has no ping list "
    "(NOBCASTPING for it alone).",
)
def create_ip(client: Client, as_json: bool, pinglist: tuple[str, ...], **options: Any) -> None:
    """Create an IP resource (R17)."""
    data = client.call("POST", "/resources/ip", {**options, "pinglist": list(pinglist)})
    where = f" on {options['server']}" if options.get("server") else ""
    done(data, as_json, f"{data['tag']}: {data['state']}{where}")


@daemon_command(create, "app")
@click.option("--tag", required=True)
@click.option("--restore", required=True, help="Command that starts it.")
@click.option("--remove", required=True, help="Command that stops it.")
@click.option("--check", required=True, help="Command that exits 0 when healthy.")
@click.option("--recover", help="Command that repairs it in place.")
@priority_option
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds per command.")
@switchback_option
@create_server_option
def create_app(client: Client, as_json: bool, **options: Any) -> None:
    """Create an application resource run by your own commands."""
    data = client.call("POST", "/resources/app", options)
    done(data, as_json, f"{data['tag']}: {data['state']}")


@daemon_command(create, "group")
@click.option("--tag", required=True)
@priority_option
@switchback_option
@create_server_option
def create_group(client: Client, as_json: bool, **options: Any) -> None:
    """Create a group: make resources its children (depend) to move them as one."""
    data = client.call("POST", "/resources/group", options)
    done(data, as_json, f"{data['tag']}: {data['state']}")


@daemon_command(None, "apply")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Show what would change; change nothing.")
def apply(client: Client, as_json: bool, path: Path, dry_run: bool) -> None:
    """Apply a TOML (or JSON) file of resources: only the difference is done."""
    import json
    import tomllib

    try:
        text = path.read_text()
        document = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        fail("file", f"{path}: {exc}")
    data = client.call("POST", "/apply", {"document": document, "dry_run": dry_run})
    if as_json:
        emit_json(data)
        return
    verb = "would" if dry_run else "did"
    lines = [f"{verb} create {len(data['create'])}, extend {sum(len(v) for v in data['extend'].values())}, "
             f"add {len(data['depend'])} dependencies, change {len(data['switchback'])} switchbacks; "
             f"{data['unchanged']} unchanged"]  # fmt: skip
    if dry_run:
        lines += [f"  create {t}" for t in data["create"]]
        lines += [f"  extend {t} to {s}" for s, tags in data["extend"].items() for t in tags]
        lines += [f"  {p} depends on {c}" for p, c in data["depend"]]
        lines += [f"  {t}: switchback {v}" for t, v in data["switchback"]]
    console().print("\n".join(lines), markup=False)


def _answers(
    interfaces: tuple[str, ...], target_tags: tuple[str, ...]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """`--interface [TAG=]IF` and `--target-tag [TAG=]T2`: the root's plain values, and
    per-resource answers for TAG=... ones."""
    root: dict[str, Any] = {}
    per: dict[str, dict[str, Any]] = {}
    for key, values in (("interface", interfaces), ("target_tag", target_tags)):
        for value in values:
            tag, sep, chosen = value.partition("=")
            if not sep:
                root[key] = value
            elif not tag or not chosen:
                fail(key.replace("_", "-"), f"{value!r} must be VALUE or TAG=VALUE")
            else:
                per.setdefault(tag, {"tag": tag})[key] = chosen
    return root, list(per.values())


def plan_lines(plan: dict[str, Any]) -> list[str]:
    """An extend's report, one line per resource, children first."""
    verb = "would extend" if plan.get("dry_run") else "extend"
    lines = [f"{verb} {plan['tag']} from {plan['template']} to {plan['target']} "
             f"(priority {plan['target_priority']}):"]  # fmt: skip
    for res in plan.get("resources", []):
        renamed = f" as {res['target_tag']}" if res["target_tag"] != res["tag"] else ""
        if res.get("interface"):
            lines.append(
                f"  {res['tag']}{renamed}: {res['address']} netmask {res['netmask']}, "
                f"{res['template_interface']} on {plan['template']} -> "
                f"{res['interface']} on {plan['target']}"
                f" (valid there: {', '.join(c['name'] for c in res['choices']) or '-'})"
            )
        else:
            lines.append(f"  {res['tag']}{renamed}: {res['type']}")
    return lines


@daemon_command(None, "extend")
@click.argument("tag", shell_complete=complete_tags)
@click.option(
    "--target", required=True, help="Server to extend to.", shell_complete=complete_servers
)
@click.option("--target-priority", type=int, default=10, show_default=True)
@click.option("--template-priority", type=int, help="This server's priority (first extend only).")
@click.option(
    "--interface",
    "interfaces",
    multiple=True,
    metavar="[TAG=]IF",
    help="Interface on the target: IF for TAG itself, TAG=IF for any IP resource of the "
    "hierarchy (repeatable); default: the template's interface name where valid there, "
    "else the best valid one.",
)
@click.option(
    "--target-tag",
    "target_tags",
    multiple=True,
    metavar="[TAG=]T2",
    help="Tag on the target: T2 for TAG itself, TAG=T2 for any resource (repeatable); "
    "default: the same tag.",
)
@click.option("--switchback", type=click.Choice(["intelligent", "automatic"]))
@click.option(
    "--dry-run", is_flag=True, help="Show every resource's interface and tag; do nothing."
)
def extend(
    client: Client,
    as_json: bool,
    tag: str,
    interfaces: tuple[str, ...],
    target_tags: tuple[str, ...],
    dry_run: bool,
    **options: Any,
) -> None:
    """Extend a hierarchy from its template to another server (R18): every resource's
    interface and tag on the target are shown before anything is done."""
    root, resources = _answers(interfaces, target_tags)
    body = {**options, **root, "resources": resources}
    path = f"/resources/{segment(tag)}/extend"
    plan = client.call("POST", path, {**body, "dry_run": True})
    if dry_run or not as_json:
        if as_json:
            emit_json(plan)
            return
        shown_plan = plan_lines({**plan, "dry_run": dry_run})
        console().print("\n".join(shown_plan), markup=False, soft_wrap=True)
        if dry_run:
            done(plan, False, "nothing done (--dry-run)")
            return
    # What was shown is what is done: every resource's interface and tag, as planned.
    shown = [{"tag": r["tag"], "interface": r.get("interface"), "target_tag": r["target_tag"]}
             for r in plan["resources"]]  # fmt: skip
    data = client.call("POST", path, {**body, "resources": shown})
    done(data, as_json, f"extended to {data['target']}: {', '.join(data['extended'])}")


@daemon_command(None, "unextend")
@click.argument("tag", shell_complete=complete_tags)
@click.option(
    "--server",
    required=True,
    help="Server to remove the hierarchy from.",
    shell_complete=complete_servers,
)
def unextend(client: Client, as_json: bool, tag: str, server: str) -> None:
    """Remove a hierarchy from one server; refused where it is in service (R19)."""
    data = client.call("POST", f"/resources/{segment(tag)}/unextend", {"server": server})
    done(data, as_json, f"unextended from {server}: {', '.join(data['unextended'])}")


@daemon_command(None, "delete")
@click.argument("tag", shell_complete=complete_tags)
def delete(client: Client, as_json: bool, tag: str) -> None:
    """Delete a hierarchy (and what depends on it) from every server (R20)."""
    data = client.call("DELETE", f"/resources/{segment(tag)}")
    done(data, as_json, "deleted: " + ", ".join(data["deleted"]))


@daemon_command(None, "depend")
@click.argument("parent", shell_complete=complete_tags)
@click.argument("child", shell_complete=complete_tags)
def depend(client: Client, as_json: bool, parent: str, child: str) -> None:
    """Make PARENT depend on CHILD (R21)."""
    data = client.call("POST", "/dependencies", {"parent": parent, "child": child})
    done(data, as_json, f"{parent} now depends on {child}")


@daemon_command(None, "undepend")
@click.argument("parent", shell_complete=complete_tags)
@click.argument("child", shell_complete=complete_tags)
def undepend(client: Client, as_json: bool, parent: str, child: str) -> None:
    """Remove the dependency of PARENT on CHILD."""
    data = client.call("DELETE", f"/dependencies/{segment(parent)}/{segment(child)}")
    done(data, as_json, f"{parent} no longer depends on {child}")


@daemon_command(None, "in-service")
@click.argument("tag", shell_complete=complete_tags)
@click.option("--server", help="Default: this server.", shell_complete=complete_servers)
def in_service(client: Client, as_json: bool, tag: str, server: str | None) -> None:
    """Bring a hierarchy in service on a server (R24)."""
    data = client.call("POST", f"/resources/{segment(tag)}/in-service", {"server": server})
    done(data, as_json, f"{tag}: {data['state']} on {data['server']}")


@daemon_command(None, "out-of-service")
@click.argument("tag", shell_complete=complete_tags)
def out_of_service(client: Client, as_json: bool, tag: str) -> None:
    """Take a hierarchy out of service (R24)."""
    data = client.call("POST", f"/resources/{segment(tag)}/out-of-service")
    done(data, as_json, f"{tag}: {data['state']}")


@daemon_command(None, "show")
@click.argument("tag", shell_complete=complete_tags)
@click.option("--server", help="Default: this server.", shell_complete=complete_servers)
def show(client: Client, as_json: bool, tag: str, server: str | None) -> None:
    """Every property of a resource (R12)."""
    data = client.call("GET", f"/resources/{segment(tag)}", server=server)
    if as_json:
        emit_json(data)
    else:
        console().print(render.properties_table(data))


server_option = click.option(
    "--server", help="Default: this server.", shell_complete=complete_servers
)


@daemon_command(None, "set")
@click.argument("tag", shell_complete=complete_tags)
@click.argument(
    "key",
    type=click.Choice(["source-address", "restore-recover", "broadcast-ping", "switchback"]),
)
@click.argument("value")
@server_option
def set_(client: Client, as_json: bool, tag: str, key: str, value: str, server: str | None) -> None:
    """source-address yes|no, restore-recover enable|disable, broadcast-ping yes|no (per server),
    switchback intelligent|automatic."""
    data = client.call(
        "PUT",
        f"/resources/{segment(tag)}/settings/{segment(key)}",
        {"value": value},
        server=server,
    )
    where = f" on {server}" if server else ""
    done(data, as_json, f"{tag}: {key} = {value}{where}")


@daemon_command(None, "pinglist")
@click.argument("tag", shell_complete=complete_tags)
@click.argument("verb", required=False, type=click.Choice(["add", "remove", "clear"]))
@click.argument("addresses", nargs=-1)
@server_option
def pinglist(
    client: Client,
    as_json: bool,
    tag: str,
    verb: str | None,
    addresses: tuple[str, ...],
    server: str | None,
) -> None:
    """Show or edit a server's ping list for TAG's subnet (R13); default this server's."""
    if verb is None:
        if addresses:
            fail("verb", "add, remove or clear is needed before addresses")
        data = client.call("GET", f"/resources/{segment(tag)}/pinglist", server=server)
    else:
        data = client.call(
            "POST",
            f"/resources/{segment(tag)}/pinglist",
            {"verb": verb, "addresses": list(addresses)},
            server=server,
        )
    listed = ", ".join(data["addresses"]) or "(empty: broadcast ping is used)"
    done(data, as_json, f"{data['subnet']} on {data['server']}: {listed}")
