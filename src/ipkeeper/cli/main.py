"""`ipkeeper`: the command line (SPEC.md section 5)."""

from __future__ import annotations

import click

from ipkeeper import __version__
from ipkeeper.cli import commands
from ipkeeper.cli.cert import cert
from ipkeeper.cli.lab import lab


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ipkeeper")
def cli() -> None:
    """Keep virtual IP addresses alive across a cluster of Linux servers."""


cli.add_command(lab)
cli.add_command(cert)
commands.register(cli)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="ipkeeper")
