"""Shared fixtures: the real lab, built and removed around the tests that need it."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from pyroute2 import IPRoute

from ipkeeper.lab import control
from ipkeeper.lab.topology import Topology


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
    if not {"lab", "kits"} & set(request.node.path.parts):
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
