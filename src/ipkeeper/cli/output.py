"""How the CLI speaks: JSON for scripts, Rich for people, one-line errors.

Exit codes (SPEC.md section 5): 0 success, 1 refused or failed (the reason on
stderr as `error: <field>: <reason>`), 2 bad usage (Click's own). `status`
and `check` add their own (cli/health.py).

Rich is imported only when something is printed for people, so that JSON
output, `--help` and completion start fast.
"""

from __future__ import annotations

import functools
import json
import sys
from typing import TYPE_CHECKING, Any, NoReturn

import click

if TYPE_CHECKING:
    from rich.console import Console

STATE_STYLES = {"ISP": "bold green", "ISU": "yellow", "OSU": "dim", "OSF": "bold red"}

json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


@functools.cache
def console() -> Console:
    """The console for people's output (stdout), created on first use."""
    from rich.console import Console

    return Console(highlight=False)


@functools.cache
def err_console() -> Console:
    """The console for notes and narration on stderr, created on first use."""
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def escape(text: str) -> str:
    """`text` with Rich markup characters escaped (daemon text is never markup)."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


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
