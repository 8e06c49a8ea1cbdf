"""`ipkeeper`: the command line (SPEC.md section 5).

Only what every command needs is imported here (Click, the HTTP client of the
standard library); Rich, the lab and pyroute2 load when a command uses them,
so that `ipkeeper status` and `--help` start fast (bench/cli.py).
"""

from __future__ import annotations

import click

from ipkeeper import __version__
from ipkeeper.cli import base, commands, complete, monitor
from ipkeeper.cli.cert import cert
from ipkeeper.cli.lab import lab

_ = (commands, complete, monitor)  # imported for the commands they declare


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ipkeeper")
def cli() -> None:
    """Keep virtual IP addresses alive across a cluster of Linux servers."""


cli.add_command(lab)
cli.add_command(cert)
base.register(cli)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="ipkeeper")
