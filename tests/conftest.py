"""Shared fixtures: the real lab, built and removed around the tests that need it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyroute2 import IPRoute

from ipkeeper.lab import control, daemons, faults
from ipkeeper.lab.topology import Topology
from ipkeeper.testing import wait_until
from ipkeeper.testing.labtools import LabServer


def root_snapshot() -> tuple[list, list, list]:
    """Links, addresses and routes of the root namespace, to prove the lab left them alone."""
    with IPRoute() as ipr:
        links = sorted(
            (str(link.get("ifname")), str(link.get("state"))) for link in ipr.link("dump")
        )
        addrs = sorted(
            (str(a.get("index")), str(a.get("address")), str(a.get("prefixlen")))
            for a in ipr.addr("dump")
        )
        routes = sorted(
            tuple(str(r.get(k)) for k in ("family", "dst", "dst_len", "oif", "table", "prefsrc"))
            for r in ipr.route("dump")
        )
    return links, addrs, routes


@pytest.fixture(autouse=True, scope="module")
def root_namespace_untouched(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every module of lab tests must leave the machine's own namespace as it found it."""
    if not {"lab", "kits", "gui", "package"} & set(request.node.path.parts):
        yield
        return
    before = root_snapshot()
    yield
    assert root_snapshot() == before, "the root namespace changed during this module"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Lab tests need root; without it they fail loudly instead of being skipped."""
    if os.geteuid() == 0:
        return
    if any(item.get_closest_marker("lab") for item in items):
        raise pytest.UsageError("lab tests need root (network namespaces); run as root")


@pytest.fixture(scope="module")
def lab() -> Iterator[Topology]:
    """A fresh two-server lab for one test module, removed afterwards even on failure."""
    control.down()
    try:
        yield control.up(2)
    finally:
        control.down()


APP_SCRIPT = """#!/bin/sh
# A stand-in application for tests: app.sh ACTION DIR VIP
# It logs each action with whether the VIP is up at that moment, and obeys
# marker files: broken (start/recover fail), sick (check fails), delay (sleep first).
dir=$2
vip=$3
[ -e "$dir/delay" ] && sleep "$(cat "$dir/delay")"
up=$(ip -o addr show | grep -c " $vip/")
echo "$1 vip=$up" >> "$dir/log"
case "$1" in
  start) [ -e "$dir/broken" ] && exit 1; touch "$dir/running" ;;
  stop) rm -f "$dir/running" ;;
  check) [ -e "$dir/running" ] && [ ! -e "$dir/sick" ] ;;
  recover) [ -e "$dir/broken" ] && exit 1; rm -f "$dir/sick"; touch "$dir/running" ;;
esac
"""


class App:
    """A test application: its script, its state directory and the create command."""

    def __init__(self, directory: Path, vip: str = "198.18.0.50") -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.script = directory / "app.sh"
        self.script.write_text(APP_SCRIPT)
        self.script.chmod(0o755)
        self.vip = vip

    def command(self, action: str) -> str:
        return f"{self.script} {action} {self.dir} {self.vip}"

    def create_args(self, tag: str = "app") -> list[str]:
        return [
            "create", "app", "--tag", tag,
            "--restore", self.command("start"), "--remove", self.command("stop"),
            "--check", self.command("check"), "--recover", self.command("recover"),
            "--timeout", "20",
        ]  # fmt: skip

    def log(self) -> list[str]:
        path = self.dir / "log"
        return path.read_text().split("\n")[:-1] if path.exists() else []

    def mark(self, name: str, content: str = "") -> None:
        (self.dir / name).write_text(content)

    def unmark(self, name: str) -> None:
        (self.dir / name).unlink(missing_ok=True)


@pytest.fixture
def app(tmp_path: Path) -> App:
    """A stand-in application whose script lives in a root-only directory."""
    return App(tmp_path / "app")


@pytest.fixture
def servers(lab: Topology) -> Iterator[dict[str, LabServer]]:
    """The lab's servers as tests drive them; every resource is deleted afterwards."""
    found = {node.name: LabServer(node) for node in lab.servers}
    for server in found.values():
        server.tune()
    yield found
    for node in lab.servers:  # whatever the test did to them, healthy again
        faults.plug(node)
        daemons.start(node)
    for server in found.values():
        server.tune()
        resources = server.status()["resources"]
        for _ in range(len(resources) + 10):
            if not resources:
                break
            server.api("DELETE", f"/resources/{resources[0]['tag']}")
            resources = server.status()["resources"]
    # Deletions reach the peers as they learn them (at once, or at the next catalog
    # exchange): the next test starts from an empty cluster.
    wait_until(
        lambda: all(not s.status()["resources"] for s in found.values()),
        15,
        message="every server without resources",
    )
