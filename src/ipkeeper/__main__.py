"""`python -m ipkeeper` is the `ipkeeper` command."""

from ipkeeper.cli.main import main

main()
