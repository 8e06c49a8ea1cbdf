"""Shared fixtures: the real lab, built and removed around the tests that need it."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from ipkeeper.lab import control
from ipkeeper.lab.topology import Topology


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
