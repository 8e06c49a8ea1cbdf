"""A short random fault sequence, the invariants checked after each step (R22, R32)."""

from __future__ import annotations

import random

import pytest

from ipkeeper.lab.topology import Topology
from ipkeeper.testing.chaos import repair_all, run, setup
from ipkeeper.testing.labtools import LabServer

pytestmark = pytest.mark.lab


def test_random_faults_break_no_invariant(lab: Topology, servers: dict[str, LabServer]) -> None:
    setup(servers)
    try:
        assert run(lab, random.Random(20261126), steps=8) == 0
    finally:
        repair_all(lab)
