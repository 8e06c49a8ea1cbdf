"""The resource commands of `ipkeeper` (SPEC.md section 5); each talks to the local daemon."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from ipkeeper.cli import render
from ipkeeper.cli.client import Client, Remote, segment, socket_path
from ipkeeper.cli.output import console, emit_json, err_console, fail

Handler = Callable[..., Any]


COMMANDS: list[click.Command] = []

# A daemon's TCP API instead of the local socket: HTTPS, a token, a pinned certificate.
REMOTE_OPTIONS = (
    click.option(
        "--cacert",
        type=click.Path(path_type=Path),
        envvar="IPKEEPER_CACERT",
        help="With --url: trust this certificate only (or IPKEEPER_CACERT).",
    ),
    click.option(
        "--token-file",
        type=click.Path(path_type=Path),
        envvar="IPKEEPER_TOKEN_FILE",
        help="With --url: the API token's file (or IPKEEPER_TOKEN_FILE).",
    ),
    click.option(
        "--url",
        metavar="URL",
        envvar="IPKEEPER_URL",
        help="A daemon's API over TCP, https://ADDRESS:PORT (or IPKEEPER_URL).",
    ),
)


@click.group("create")
def create() -> None:
    """Create a resource on this server and bring it in service."""


COMMANDS.append(create)


def daemon_command(
    group: click.Group | None, name: str, **settings: Any
) -> Callable[[Handler], click.Command]:
    """A command taking --json and --socket; the handler gets a Client first.

    It is added to `group`, or to the top-level COMMANDS when `group` is None.
    """

    def decorate(fn: Handler) -> click.Command:
        @functools.wraps(fn)
        def wrapper(
            as_json: bool,
            socket: str | None,
            url: str | None,
            token_file: Path | None,
            cacert: Path | None,
            **kwargs: Any,
        ) -> None:
            remote = Remote(url, token_file, cacert) if url else None
            fn(Client(socket_path(socket), remote=remote), as_json, **kwargs)

        for option in REMOTE_OPTIONS:
            wrapper = option(wrapper)
        wrapper = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")(
            wrapper
        )
        wrapper = click.option(
            "--socket", metavar="PATH", help="Daemon API socket (or IPKEEPER_SOCKET)."
        )(wrapper)
        command = click.command(name, **settings)(wrapper)
        if group is None:
            COMMANDS.append(command)
        else:
            group.add_command(command)
        return command

    return decorate


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


def done(data: dict[str, Any], as_json: bool, message: str) -> None:
    """Print a result: the JSON, or a sentence and any warnings or notes."""
    if as_json:
        emit_json(data)
        return
    console.print(message, markup=False)
    for note in data.get("warnings", []) + data.get("notes", []):
        err_console.print(f"[yellow]note:[/yellow] {escape(note)}")


@daemon_command(None, "status")
def status(client: Client, as_json: bool) -> None:
    """Servers, comm paths, hierarchies and states per server."""
    data = client.call("GET", "/status")
    if as_json:
        emit_json(data)
        return
    for table in render.status_tables(data):
        console.print(table)
    line = render.security_line(data)
    if line:
        console.print(line)


@daemon_command(None, "interfaces")
@click.option("--address", required=True)
@click.option("--netmask", required=True)
@click.option("--server", help="Default: this server.")
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
        console.print(f"{item['name']}\t{item['reason']}", markup=False)


@daemon_command(create, "ip")
@click.option("--address", required=True, help="IPv4/IPv6 address or host name.")
@click.option("--netmask", required=True, help="Dotted netmask or prefix length.")
@click.option("--interface", help="Default: the best valid interface.")
@click.option("--tag", help="Default: ip-<address>.")
@priority_option
@switchback_option
def create_ip(client: Client, as_json: bool, **options: Any) -> None:
    """Create an IP resource (R17)."""
    data = client.call("POST", "/resources/ip", options)
    done(data, as_json, f"{data['tag']}: {data['state']}")


@daemon_command(create, "app")
@click.option("--tag", required=True)
@click.option("--restore", required=True, help="Command that starts it.")
@click.option("--remove", required=True, help="Command that stops it.")
@click.option("--check", required=True, help="Command that exits 0 when healthy.")
@click.option("--recover", help="Command that repairs it in place.")
@priority_option
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds per command.")
@switchback_option
def create_app(client: Client, as_json: bool, **options: Any) -> None:
    """Create an application resource run by your own commands."""
    data = client.call("POST", "/resources/app", options)
    done(data, as_json, f"{data['tag']}: {data['state']}")


@daemon_command(None, "extend")
@click.argument("tag")
@click.option("--target", required=True, help="Server to extend to.")
@click.option("--target-priority", type=int, default=10, show_default=True)
@click.option("--template-priority", type=int, help="This server's priority (first extend only).")
@click.option("--interface", help="Interface on the target; default: the best valid one there.")
@click.option("--target-tag", help="Tag on the target; default: the same tag.")
@click.option("--switchback", type=click.Choice(["intelligent", "automatic"]))
def extend(client: Client, as_json: bool, tag: str, **options: Any) -> None:
    """Extend a hierarchy from this server to another (R18)."""
    data = client.call("POST", f"/resources/{segment(tag)}/extend", options)
    done(data, as_json, f"extended to {data['target']}: {', '.join(data['extended'])}")


@daemon_command(None, "unextend")
@click.argument("tag")
@click.option("--server", required=True, help="Server to remove the hierarchy from.")
def unextend(client: Client, as_json: bool, tag: str, server: str) -> None:
    """Remove a hierarchy from one server; refused where it is in service (R19)."""
    data = client.call("POST", f"/resources/{segment(tag)}/unextend", {"server": server})
    done(data, as_json, f"unextended from {server}: {', '.join(data['unextended'])}")


@daemon_command(None, "delete")
@click.argument("tag")
def delete(client: Client, as_json: bool, tag: str) -> None:
    """Delete a hierarchy (and what depends on it) from every server (R20)."""
    data = client.call("DELETE", f"/resources/{segment(tag)}")
    done(data, as_json, "deleted: " + ", ".join(data["deleted"]))


@daemon_command(None, "depend")
@click.argument("parent")
@click.argument("child")
def depend(client: Client, as_json: bool, parent: str, child: str) -> None:
    """Make PARENT depend on CHILD (R21)."""
    data = client.call("POST", "/dependencies", {"parent": parent, "child": child})
    done(data, as_json, f"{parent} now depends on {child}")


@daemon_command(None, "undepend")
@click.argument("parent")
@click.argument("child")
def undepend(client: Client, as_json: bool, parent: str, child: str) -> None:
    """Remove the dependency of PARENT on CHILD."""
    data = client.call("DELETE", f"/dependencies/{segment(parent)}/{segment(child)}")
    done(data, as_json, f"{parent} no longer depends on {child}")


@daemon_command(None, "in-service")
@click.argument("tag")
@click.option("--server", help="Default: this server.")
def in_service(client: Client, as_json: bool, tag: str, server: str | None) -> None:
    """Bring a hierarchy in service on a server (R24)."""
    data = client.call("POST", f"/resources/{segment(tag)}/in-service", {"server": server})
    done(data, as_json, f"{tag}: {data['state']} on {data['server']}")


@daemon_command(None, "out-of-service")
@click.argument("tag")
def out_of_service(client: Client, as_json: bool, tag: str) -> None:
    """Take a hierarchy out of service (R24)."""
    data = client.call("POST", f"/resources/{segment(tag)}/out-of-service")
    done(data, as_json, f"{tag}: {data['state']}")


@daemon_command(None, "show")
@click.argument("tag")
@click.option("--server", help="Default: this server.")
def show(client: Client, as_json: bool, tag: str, server: str | None) -> None:
    """Every property of a resource (R12)."""
    data = client.call("GET", f"/resources/{segment(tag)}", server=server)
    if as_json:
        emit_json(data)
    else:
        console.print(render.properties_table(data))


@daemon_command(None, "set")
@click.argument("tag")
@click.argument("key", type=click.Choice(["source-address", "restore-recover", "switchback"]))
@click.argument("value")
def set_(client: Client, as_json: bool, tag: str, key: str, value: str) -> None:
    """source-address yes|no, restore-recover enable|disable, switchback intelligent|automatic."""
    data = client.call(
        "PUT", f"/resources/{segment(tag)}/settings/{segment(key)}", {"value": value}
    )
    done(data, as_json, f"{tag}: {key} = {value}")


@daemon_command(None, "pinglist")
@click.argument("tag")
@click.argument("verb", required=False, type=click.Choice(["add", "remove", "clear"]))
@click.argument("addresses", nargs=-1)
def pinglist(
    client: Client, as_json: bool, tag: str, verb: str | None, addresses: tuple[str, ...]
) -> None:
    """Show or edit this server's ping list for TAG's subnet (R13)."""
    if verb is None:
        if addresses:
            fail("verb", "add, remove or clear is needed before addresses")
        data = client.call("GET", f"/resources/{segment(tag)}/pinglist")
    else:
        data = client.call(
            "POST",
            f"/resources/{segment(tag)}/pinglist",
            {"verb": verb, "addresses": list(addresses)},
        )
    listed = ", ".join(data["addresses"]) or "(empty: broadcast ping is used)"
    done(data, as_json, f"{data['subnet']} on {data['server']}: {listed}")


@daemon_command(None, "events")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events.")
@click.option("--limit", type=click.IntRange(1, 10000), default=50, show_default=True)
def events(client: Client, as_json: bool, follow: bool, limit: int) -> None:
    """The event log: state changes, checks, recoveries, actions, with reasons (R29)."""
    data = client.call("GET", "/events", limit=limit)
    if as_json and not follow:
        emit_json(data)  # one JSON document; with --follow, one object per line instead
        return
    last = 0
    for event in data["events"]:
        last = event["id"]
        _print_event(event, as_json)
    if follow:
        try:
            for event in client.stream("/events/stream", after=last):
                _print_event(event, as_json)
        except KeyboardInterrupt:
            return  # Ctrl-C is how one stops following


@daemon_command(None, "tunables")
def tunables(client: Client, as_json: bool) -> None:
    """Effective tunables and where each came from (R11)."""
    data = client.call("GET", "/tunables")
    if as_json:
        emit_json(data)
        return
    console.print(f"from {data['file']}:")
    for item in data["tunables"]:
        console.print(f"{item['name']}={item['value']}\t[dim]{escape(item['source'])}[/dim]")


def register(cli: click.Group) -> None:
    """Add every resource command to `cli`."""
    for command in COMMANDS:
        cli.add_command(command)


def _print_event(event: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(event))
    else:
        click.echo(render.event_line(event))
