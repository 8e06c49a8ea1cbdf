"""How the CLI speaks: JSON for scripts, Rich for people, one-line errors.

Exit codes (SPEC.md section 5): 0 success, 1 refused or failed (the reason on
stderr as `error: <field>: <reason>`), 2 bad usage (Click's own).
"""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import click
from rich.console import Console

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

STATE_STYLES = {"ISP": "bold green", "ISU": "yellow", "OSU": "dim", "OSF": "bold red"}

json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


class CommandError(click.ClickException):
    """A refused or failed command: printed as one line, exit code 1."""

    exit_code = 1

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")

    def show(self, file: Any = None) -> None:
        """Print `error: <field>: <reason>` on stderr."""
        click.echo(f"error: {self.format_message()}", err=True)


def fail(field: str, reason: str) -> NoReturn:
    """Refuse the command with a one-line reason naming `field`."""
    raise CommandError(field, reason)


def emit_json(data: Any) -> None:
    """Write `data` as JSON on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def state_text(state: str | None) -> str:
    """A state name with Rich colour markup."""
    if not state:
        return "[dim]-[/dim]"
    style = STATE_STYLES.get(state, "")
    return f"[{style}]{state}[/{style}]" if style else state
