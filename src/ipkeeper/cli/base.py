"""What every daemon command shares: --json, --socket, a Client, and how results print."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from ipkeeper.cli.client import Client, socket_path
from ipkeeper.cli.output import console, emit_json, err_console, escape

Handler = Callable[..., Any]

COMMANDS: list[click.Command] = []


def daemon_command(
    group: click.Group | None, name: str, **settings: Any
) -> Callable[[Handler], click.Command]:
    """A command taking --json and --socket; the handler gets a Client first.

    It is added to `group`, or to the top-level COMMANDS when `group` is None.
    """

    def decorate(fn: Handler) -> click.Command:
        @functools.wraps(fn)
        def wrapper(as_json: bool, socket: str | None, **kwargs: Any) -> Any:
            return fn(Client(socket_path(socket)), as_json, **kwargs)

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
