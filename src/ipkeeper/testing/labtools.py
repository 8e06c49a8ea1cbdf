"""Lab helpers for tests: act on a node, read what a client's kernel learned."""

from __future__ import annotations

import ipaddress
import json
import socket
import ssl
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any, TypeVar

import httpx
from pyroute2 import IPRoute

from ipkeeper.lab import netns as ns
from ipkeeper.lab.topology import Node
from ipkeeper.testing import run_cli

T = TypeVar("T")


def on(node: Node, fn: Callable[[], T]) -> T:
    """Run `fn` inside `node`'s namespace (netlink and sockets included), return its result."""
    return ns.call_in(node.namespace, fn)


def neighbour_mac(node: Node, address: str) -> str | None:
    """The MAC that `node`'s neighbour table holds for `address`, or None."""
    family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
    with IPRoute(netns=node.namespace) as ipr:
        for entry in ipr.get_neighbours(family=family):
            if entry.get("dst") == address and entry.get("lladdr"):
                return str(entry.get("lladdr"))
    return None


def link_set(namespace: str, ifname: str, up: bool) -> None:
    """Set an interface in a lab namespace up or down (as an administrator would)."""
    with IPRoute(netns=namespace) as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname=ifname)[0], state="up" if up else "down")


def addr_change(node: Node, ifname: str, cidr: str, add: bool) -> None:
    """Add or delete an address by hand on a node's interface (IPv6 without waiting for DAD)."""
    iface = ipaddress.ip_interface(cidr)
    with IPRoute(netns=node.namespace) as ipr:
        index = ipr.link_lookup(ifname=ifname)[0]
        ipr.addr(
            "add" if add else "del",
            index=index,
            address=str(iface.ip),
            prefixlen=iface.network.prefixlen,
            # IPv6: usable at once, as after the kernel's own DAD has finished.
            flags=0x02 if add and iface.version == 6 else 0,
        )


def over_tcp(node: Node, url: str, fn: Callable[[httpx.Client], T], token: str | None = None) -> T:
    """Run `fn` with an HTTP client inside `node`'s namespace, for a daemon's TCP API at
    `url` (https: only the lab's certificate is trusted), showing `token` if given."""
    from ipkeeper.lab import daemons

    def run() -> T:
        verify = ssl.create_default_context(cafile=str(daemons.cert_path()))
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        with httpx.Client(
            base_url=url, verify=verify, headers=headers, timeout=30, trust_env=False
        ) as http:
            return fn(http)

    return on(node, run)


def write_tunables(path: Path, **values: object) -> None:
    """Write a tunables file as an administrator would (KEY=VALUE lines)."""
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))


class LabServer:
    """A lab server as a test drives it: through the CLI, its API and its kernel."""

    def __init__(self, node: Node) -> None:
        from ipkeeper.lab import daemons

        self.node = node
        self.name = node.name
        self.socket = daemons.socket_path(node)
        self.tunables = daemons.tunables_path(node)
        self.since = 0  # an event id: tests look only at events after it

    def cli(self, *args: str, timeout: float = 120.0) -> CompletedProcess[str]:
        """Run `ipkeeper ARGS` against this server's daemon."""
        return run_cli(*args, timeout=timeout, env={"IPKEEPER_SOCKET": str(self.socket)})

    def json(self, *args: str) -> Any:
        """Run `ipkeeper ARGS --json`, which must succeed; its parsed output.

        A `status` of a degraded cluster succeeded too: it exits 4 and up
        (cli/health.py) with the same JSON.
        """
        proc = self.cli(*args, "--json")
        degraded = bool(args) and args[0] == "status" and proc.returncode >= 4
        assert proc.returncode == 0 or degraded, f"ipkeeper {' '.join(args)}: {proc.stderr.strip()}"
        return json.loads(proc.stdout)

    def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Call the daemon's API directly (fast, for polling); the JSON answer."""
        transport = httpx.HTTPTransport(uds=str(self.socket))
        with httpx.Client(transport=transport, base_url="http://ipkeeperd", timeout=60) as http:
            return http.request(method, f"/api/v1{path}", json=body).json()

    def status(self) -> dict[str, Any]:
        """GET /api/v1/status."""
        result: dict[str, Any] = self.api("GET", "/status")
        return result

    def state(self, tag: str, server: str | None = None) -> str | None:
        """The state of `tag` on `server` (default: this one) as this daemon reports it."""
        for res in self.status()["resources"]:
            if res["tag"] == tag or any(i["tag"] == tag for i in res["servers"].values()):
                inst = res["servers"].get(server or self.name)
                return inst["state"] if inst else None
        return None

    def events(self, tag: str | None = None, after: int = 0) -> list[dict[str, Any]]:
        """The event log (last 500 after event id `after`), oldest first."""
        query = f"?limit=500&after={after}" + (f"&tag={tag}" if tag else "")
        events: list[dict[str, Any]] = self.api("GET", f"/events{query}")["events"]
        return events

    def mark(self) -> int:
        """The id of the newest event, to look only at what happens after it."""
        events = self.api("GET", "/events?limit=1")["events"]
        return int(events[-1]["id"]) if events else 0

    def tune(self, **values: object) -> None:
        """Write this server's tunables file."""
        write_tunables(self.tunables, **values)

    def has_address(self, address: str) -> bool:
        """True when `address` is configured on any interface of this server."""
        from ipkeeper.kits.ip import netlink

        return on(self.node, lambda: netlink.where_is(ipaddress.ip_address(address))) is not None


def holders(servers: list[LabServer], address: str) -> list[str]:
    """Names of the servers that have `address` configured, in order."""
    return [s.name for s in servers if s.has_address(address)]


def catalog(server: LabServer) -> list[tuple[str, list[tuple[str, int]]]]:
    """The definitions a server holds: each tag with its servers and priorities."""
    return sorted(
        (r["tag"], sorted((name, inst["priority"]) for name, inst in r["servers"].items()))
        for r in server.status()["resources"]
    )


def story(*servers: LabServer) -> list[str]:
    """What happened on these servers since each one's `since` mark, for assertion messages."""
    return [
        f"{e['server']} {e['kind']}: {e['message']}"
        for s in servers
        for e in s.events(after=s.since)
    ]
