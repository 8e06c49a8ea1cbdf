"""What the engine does with an address conflict in service (issue 11, item 9): a real
engine, store and monitor, the IP kit's kernel actions stubbed, conflicts reported as
the listener reports them (the listener itself is tested in tests/unit and the lab)."""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from ipkeeper.config.tunables import Tunables
from ipkeeper.engine.conflicts import ConflictGuard
from ipkeeper.engine.core import Engine
from ipkeeper.engine.monitor import Monitor
from ipkeeper.kits.ip.conflict import Conflict, Report
from ipkeeper.kits.ip.kit import IPKit
from ipkeeper.kits.ip.netlink import LinkState
from ipkeeper.kits.registry import KitRegistry
from ipkeeper.model.resource import Instance
from ipkeeper.model.states import KitResult, Outcome, ResourceState
from ipkeeper.store.db import open_db
from ipkeeper.store.events import EventLog
from ipkeeper.store.repo import InstanceRecord, Repo, ResourceRecord
from ipkeeper.testing import timeout_scale

VIP = ipaddress.IPv4Address("198.18.0.50")
ROGUE = "02:49:4b:00:00:01"
FAILED = KitResult(Outcome.FAILED_LOCAL, "reachability: nobody answered", step="reachability")


async def wait_until_async(
    predicate: Callable[[], object], timeout: float, message: str = "condition"
) -> None:
    """Let the loop run (the guard's tasks, the engine's worker threads) until
    `predicate()` holds, or fail after `timeout`."""
    deadline = time.monotonic() + timeout * timeout_scale()
    while not predicate():
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {message}")
        await asyncio.sleep(0.005)


class StubIPKit(IPKit):
    """The IP kit without the kernel: checks answer `self.result`, announcements are
    counted, recoveries and removals are counted (and must not happen here)."""

    def __init__(self, tunables: Tunables) -> None:
        super().__init__(tunables)
        self.result = KitResult.success("saved responder 198.18.0.1 answered")
        self.announced = 0
        self.recovered = 0
        self.removed = 0
        self.neighbours: dict[str, list[Any]] = {}

    def quick_check(self, instance: Instance) -> KitResult:
        return self.result

    def quick_check_many(self, instances: list[Instance]) -> list[KitResult]:
        return [self.result] * len(instances)

    def announce_many(self, instances: list[Instance]) -> list[KitResult]:
        self.announced += 1
        return [KitResult.success("announced")] * len(instances)

    def recover(self, instance: Instance) -> KitResult:
        self.recovered += 1
        return KitResult(Outcome.FAILED_NODE, "local recovery failed", step="unique")

    def remove_many(self, instances: list[Instance]) -> list[KitResult]:
        self.removed += 1
        return [KitResult.success("removed")] * len(instances)

    def link_state(self, ifname: str) -> LinkState:
        return LinkState(True, True, True)

    def neighbour_addresses(self, mac: str) -> list[Any]:
        return self.neighbours.get(mac, [])


class Setup:
    def __init__(self, engine: Engine, kit: StubIPKit, guard: ConflictGuard, rid: str) -> None:
        self.engine, self.kit, self.guard, self.rid = engine, kit, guard, rid

    def state(self) -> tuple[ResourceState, str]:
        st = self.engine.repo.local_state(self.rid)
        assert st is not None
        return st.state, st.reason

    def events(self) -> list[str]:
        return [e.message for e in self.engine.events.recent(limit=100)]

    def report(self, kind: str, reclaimed: bool = True) -> None:
        now = time.monotonic()
        self.guard.reported(Report(kind, "eth0", VIP, ROGUE, now - 1, now, 3, reclaimed))

    def open_conflict(self) -> None:
        """As the listener records one (what `active` answers)."""
        conflicts = self.kit.conflicts._conflicts
        conflicts._open[("eth0", VIP)] = Conflict("eth0", VIP, ROGUE, 0.0, time.monotonic())


@pytest_asyncio.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    path = tmp_path / "tunables"
    path.write_text("IP_CONFLICT_DETECT=0\nRECOVERY_TRIES=1\n")  # no listener thread needed
    path.chmod(0o600)
    tunables = Tunables(path)
    db = open_db(tmp_path / "ipkeeper.db")
    kit = StubIPKit(tunables)
    engine = Engine("s1", Repo(db), EventLog(db, "s1", tunables), KitRegistry(kit), tunables)
    props = {"address": str(VIP), "prefix": 24, "interface": "eth0"}
    rid = "id-vip"
    record = ResourceRecord(
        rid, "ip", "intelligent", 1, (InstanceRecord(rid, "s1", "vip", 1, props),), time.time()
    )
    with engine.repo.db.transaction():
        engine.repo.insert_resource(record)
        engine.repo.set_state(rid, ResourceState.ISP, "created")
    guard = ConflictGuard(engine).start(asyncio.get_running_loop())
    yield Setup(engine, kit, guard, rid)
    kit.conflicts.close()
    engine.close()


@pytest.mark.asyncio
async def test_an_in_service_vip_is_watched_and_no_longer_once_out_of_service(
    setup: Setup,
) -> None:
    assert setup.kit.conflicts.watched() == {"eth0": {VIP}}
    setup.engine.repo.set_state(setup.rid, ResourceState.OSU, "taken down")
    assert setup.kit.conflicts.watched() == {}


@pytest.mark.asyncio
async def test_a_conflict_is_reported_counted_and_keeps_the_vip_isu_until_it_ends(
    setup: Setup,
) -> None:
    setup.report("began")
    await wait_until_async(lambda: setup.state()[0] is ResourceState.ISU, 2, message="ISU")
    reason = setup.state()[1]
    assert reason.startswith(f"address conflict with {ROGUE} on eth0; defending"), reason
    assert any(
        m.startswith(f"address conflict: {VIP} also announced by {ROGUE}") for m in setup.events()
    )
    metrics = setup.engine.metrics
    assert metrics.address_conflicts.labels("vip")._value.get() == 1
    assert metrics.address_conflicts_active._value.get() == 1
    setup.report("ended")
    await wait_until_async(lambda: setup.state()[0] is ResourceState.ISP, 2, message="ISP")
    assert "ended: reclaimed" in setup.state()[1]
    assert any(m.startswith("address conflict ended") for m in setup.events())
    assert metrics.address_conflicts_active._value.get() == 0


@pytest.mark.asyncio
async def test_a_check_failing_during_a_conflict_is_neither_recovered_nor_handed_over(
    setup: Setup,
) -> None:
    handed: list[str] = []

    async def on_failure(rid: str, ids: set[str], why: str) -> None:
        handed.append(why)

    monitor = Monitor(setup.engine, on_failure=on_failure)
    setup.open_conflict()  # the listener saw it; its report has not reached the loop yet
    rec = setup.engine.repo.resource(setup.rid)
    assert rec is not None
    await monitor._failed(setup.rid, FAILED)
    state, reason = setup.state()
    assert state is ResourceState.ISU and "check failed (reachability" in reason, reason
    assert setup.kit.recovered == 0 and handed == []


@pytest.mark.asyncio
async def test_without_a_conflict_a_failing_check_recovers_then_hands_over_as_before(
    setup: Setup,
) -> None:
    handed: list[str] = []

    async def on_failure(rid: str, ids: set[str], why: str) -> None:
        handed.append(why)

    monitor = Monitor(setup.engine, on_failure=on_failure)
    await monitor._failed(setup.rid, FAILED)
    assert setup.kit.recovered == 1 and len(handed) == 1


@pytest.mark.asyncio
async def test_a_conflict_with_a_peer_is_named_and_changes_no_state(setup: Setup) -> None:
    setup.engine.peers.servers = lambda: [  # type: ignore[method-assign]
        {"name": "s1", "local": True, "comm_paths": []},
        {"name": "s2", "local": False, "comm_paths": [{"local": "x", "remote": "198.18.0.12"}]},
    ]
    setup.kit.neighbours[ROGUE] = [ipaddress.ip_address("198.18.0.12")]
    setup.report("began")
    await wait_until_async(
        lambda: any("(s2, a server of this cluster)" in m for m in setup.events()), 2
    )
    assert setup.state()[0] is ResourceState.ISP
    assert setup.kit.conflicts.peer_macs == {ROGUE: "s2"}
    setup.open_conflict()
    monitor = Monitor(setup.engine, on_failure=lambda rid, ids, why: asyncio.sleep(0))
    await monitor._failed(setup.rid, FAILED)
    assert setup.kit.recovered == 1  # the cluster's rules, not the conflict's, apply
