"""Shell completion (bash, zsh, fish): Click's machinery, plus tags and server names
asked of the daemon while the user types (quietly nothing when it does not answer)."""

from __future__ import annotations

from typing import Any

import click
from click.shell_completion import CompletionItem, get_completion_class

from ipkeeper.cli.base import COMMANDS, client_for
from ipkeeper.cli.client import DaemonError

SHELLS = ("bash", "zsh", "fish")
ASK_TIMEOUT = 2.0  # seconds: a completion that hangs is worse than none


def _status(ctx: click.Context) -> dict[str, Any]:
    try:
        return client_for(ctx.params, ASK_TIMEOUT).request("GET", "/status")
    except DaemonError:
        return {}


def _items(names: set[str], incomplete: str) -> list[CompletionItem]:
    return [CompletionItem(n) for n in sorted(names) if n.startswith(incomplete)]


def complete_tags(
    ctx: click.Context, _param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """Every resource tag in the cluster (each server's own tag included)."""
    tags: set[str] = set()
    for resource in _status(ctx).get("resources", []):
        tags.add(resource["tag"])
        tags.update(i["tag"] for i in resource.get("servers", {}).values() if i.get("tag"))
    return _items(tags, incomplete)


def complete_servers(
    ctx: click.Context, _param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """Every server of the cluster."""
    return _items({s["name"] for s in _status(ctx).get("servers", [])}, incomplete)


@click.command("completion")
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the shell completion script (commands, options, tags, servers).

    \b
    bash:  eval "$(ipkeeper completion bash)"        (in ~/.bashrc)
    zsh:   eval "$(ipkeeper completion zsh)"         (in ~/.zshrc, after compinit)
    fish:  ipkeeper completion fish > ~/.config/fish/completions/ipkeeper.fish
    """
    root = ctx.find_root()
    name = root.info_name or "ipkeeper"
    variable = "_{}_COMPLETE".format(name.replace("-", "_").upper())
    cls = get_completion_class(shell)
    assert cls is not None
    click.echo(cls(root.command, {}, name, variable).source())


COMMANDS.append(completion)
