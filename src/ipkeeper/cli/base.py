"""What every daemon command shares: --json, --socket (or --url, --token-file, --cacert for
a daemon's TCP API), a Client, and how results print."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import click

from ipkeeper.cli.client import Client, socket_path
from ipkeeper.cli.output import console, emit_json, err_console, escape

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


def client_for(options: Mapping[str, Any], timeout: float = 600.0) -> Client:
    """The Client the connection options ask for: the local socket, or with a URL the TCP
    API (whose module, with ssl and httpx, is loaded only then)."""
    remote = None
    if options.get("url"):
        from ipkeeper.cli.remote import Remote

        remote = Remote(options["url"], options.get("token_file"), options.get("cacert"))
    return Client(socket_path(options.get("socket")), timeout, remote=remote)


def daemon_command(
    group: click.Group | None, name: str, **settings: Any
) -> Callable[[Handler], click.Command]:
    """A command taking --json, --socket and the remote options; the handler gets a Client
    first.

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
        ) -> Any:
            options = {"socket": socket, "url": url, "token_file": token_file, "cacert": cacert}
            return fn(client_for(options), as_json, **kwargs)

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


def done(data: dict[str, Any], as_json: bool, message: str) -> None:
    """Print a result: the JSON, or a sentence and any warnings or notes."""
    if as_json:
        emit_json(data)
        return
    console().print(message, markup=False)
    for note in data.get("warnings", []) + data.get("notes", []):
        err_console().print(f"[yellow]note:[/yellow] {escape(note)}", soft_wrap=True)


def register(cli: click.Group) -> None:
    """Add every command declared with daemon_command (and COMMANDS.append) to `cli`."""
    for command in COMMANDS:
        cli.add_command(command)
