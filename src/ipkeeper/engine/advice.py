"""What the engine needs for the guide's warnings: every server's addresses, the hosts file.

The warnings themselves are pure (kits/ip/advice.py); this gathers their facts.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from pathlib import Path

from ipkeeper.engine.core import Engine
from ipkeeper.engine.errors import OpError
from ipkeeper.kits.ip.advice import HOSTS_FILE, cluster_servers_named
from ipkeeper.kits.ip.params import IPAddress

log = logging.getLogger("ipkeeper.engine")

ADDRESSES_TIMEOUT = 5.0


def _parse(text: object) -> IPAddress | None:
    try:
        return ipaddress.ip_address(str(text).split("%")[0])
    except ValueError:
        return None


async def cluster_addresses(engine: Engine) -> dict[IPAddress, str]:
    """Every address known to belong to a server of the cluster, with its name: this
    server's own, both ends of every comm path, and what each live peer says it has."""
    loop = asyncio.get_running_loop()
    found: dict[IPAddress, str] = {}
    for server in engine.peers.servers():
        for path in server.get("comm_paths", []):
            for end, owner in (
                (path.get("local"), engine.server),
                (path.get("remote"), server["name"]),
            ):
                if (address := _parse(end)) is not None:
                    found.setdefault(address, owner)
    for address in await loop.run_in_executor(engine.pool, engine.ip_kit().own_addresses):
        found[address] = engine.server
    peers = sorted(engine.peers.alive() - {engine.server})
    answers = await asyncio.gather(
        *(engine.peers.request(p, "addresses", {}, timeout=ADDRESSES_TIMEOUT) for p in peers),
        return_exceptions=True,
    )
    for peer, answer in zip(peers, answers, strict=True):
        if isinstance(answer, BaseException):
            if not isinstance(answer, (OpError, TimeoutError, OSError)):
                raise answer
            log.debug("addresses of %s unknown: %s", peer, answer)
            continue
        for text in answer.get("addresses", []):
            if (address := _parse(text)) is not None:
                found.setdefault(address, peer)
    return found


def read_hosts(path: str = HOSTS_FILE) -> str | None:
    """The hosts file's text, or None when it cannot be read."""
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return None


async def ping_list_warnings(engine: Engine, addresses: list[IPAddress]) -> list[str]:
    """R13: a warning for each address that belongs to a server of the cluster, this
    one or a peer (it always answers); nothing is asked when there is nothing to check."""
    if not addresses:
        return []
    return cluster_servers_named(addresses, await cluster_addresses(engine), engine.server)
