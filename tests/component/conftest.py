"""Shared component-layer fixtures: real engines over the fakes (ipkeeper.testing.fakes)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from ipkeeper.testing.fakes import ComponentCluster


@pytest_asyncio.fixture
async def pair(tmp_path: Path) -> AsyncIterator[ComponentCluster]:
    """Two servers, one resource "vip" in service on s1 (priority 1), s2 its backup."""
    cluster = await ComponentCluster.start(tmp_path, ["s1", "s2"])
    cluster.define("vip", {"s1": 1, "s2": 10})
    await cluster.bring_up("s1", "vip")
    yield cluster
    await cluster.close()
