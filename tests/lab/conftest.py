"""Fixtures for the cluster tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ipkeeper.lab import daemons, faults
from ipkeeper.lab.topology import Topology
from ipkeeper.testing import wait_until
from ipkeeper.testing.labtools import LabServer


@pytest.fixture
def pair(servers: dict[str, LabServer], lab: Topology) -> Iterator[tuple[LabServer, LabServer]]:
    """s1 and s2 (events counted from now), whole and healthy again after the test."""
    s1, s2 = servers["s1"], servers["s2"]
    s1.since, s2.since = s1.mark(), s2.mark()
    yield s1, s2
    for node in lab.servers:
        faults.plug(node)
        daemons.start(node)
    for server in servers.values():
        wait_until(
            lambda s=server: all(x["alive"] for x in s.status()["servers"]),
            10,
            message="cluster whole again",
        )
