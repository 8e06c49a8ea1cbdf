"""Fakes of ipkeeper's own seams, for component tests that run in milliseconds.

    cluster = await ComponentCluster.start(tmp_path, ["s1", "s2"])
    cluster.define("vip", {"s1": 1, "s2": 10})
    await cluster.bring_up("s1", "vip")
    cluster.kill("s1")
    await cluster.settle()
    assert cluster.holders("vip") == ["s2"]

The real engine, store (SQLite in a temporary directory), peer table, view
builder, decisions, failover loop and cluster service run; what is fake is
only what stands between them and the world:
- `FakeKit`: resources that are "active" in a shared in-memory network,
  where a resource active on a reachable server answers the unique-address
  check (as an IP address would), and where actions can be made to fail;
- `FakeNetwork` and `FakeNode`: the comm paths, delivering messages between
  servers in the same event loop, with servers that can be killed,
  partitioned and brought back;
- `FakeClock`: the time decisions see, moved on by the test (no sleeps).
The failover loop is not run on its own: `settle()` runs its passes and
everything they start until nothing is left to do; nor is the monitor:
`check(server)` runs one round of that server's health checks and what
their failures start.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ipkeeper.cluster.service import ClusterService
from ipkeeper.config.tunables import Tunables
from ipkeeper.engine.core import Engine
from ipkeeper.engine.errors import OpError
from ipkeeper.engine.failover import Failover
from ipkeeper.engine.monitor import Monitor
from ipkeeper.engine.moves import hierarchy_up
from ipkeeper.engine.noresponder import NoResponder
from ipkeeper.engine.peertable import PeerTable
from ipkeeper.engine.reconcile import reconcile
from ipkeeper.kits.base import KitDescription
from ipkeeper.kits.registry import KitRegistry
from ipkeeper.model.resource import Instance
from ipkeeper.model.states import KitResult, Outcome, ResourceState
from ipkeeper.store.db import open_db
from ipkeeper.store.events import EventLog
from ipkeeper.store.repo import InstanceRecord, Repo, ResourceRecord


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        """The time now."""
        return self.now

    def advance(self, seconds: float) -> None:
        """Let `seconds` pass."""
        self.now += seconds


SUBNET = "198.18.0.0/24"  # the subnet FakeKit's resources are on, for messages


class FakeNetwork:
    """Who can reach whom, and what is active where."""

    def __init__(self) -> None:
        self.nodes: dict[str, FakeNode] = {}
        self.dead: set[str] = set()
        self.cut: set[frozenset[str]] = set()
        self.active: dict[str, set[str]] = {}  # server -> tags active there
        # Servers from which nobody on the resources' subnet answers a ping (a router
        # that stopped answering: every server), and servers that cannot test it.
        self.silent: set[str] = set()
        self.unsure: set[str] = set()

    def reachable(self, a: str, b: str) -> bool:
        """True when `a` and `b` can exchange messages."""
        return a not in self.dead and b not in self.dead and frozenset((a, b)) not in self.cut

    def answers(self, tag: str, asker: str) -> str | None:
        """A server (other than `asker`) where `tag` is active: its kernel answers on the
        LAN whatever its daemon or its comm paths are doing (the unique-address check)."""
        for server, tags in self.active.items():
            if server != asker and tag in tags:
                return server
        return None

    def changed(self) -> None:
        """Tell every live node who it can reach now (as heartbeats would)."""
        for name, node in self.nodes.items():
            if name in self.dead:
                continue
            for other in self.nodes:
                if other != name:
                    node.liveness(other, self.reachable(name, other))


@dataclass
class FakeKit:
    """A resource type whose resources are names made active in a FakeNetwork."""

    server: str
    network: FakeNetwork
    kind: str = "fake"
    failing: dict[str, set[str]] = field(default_factory=dict)  # action -> tags that fail

    def describe(self) -> KitDescription:
        """No parameters."""
        return KitDescription(self.kind, "a fake resource for component tests", ())

    def _fails(self, action: str, tag: str) -> bool:
        return tag in self.failing.get(action, set())

    def restore(self, instance: Instance) -> KitResult:
        """Active here, unless another reachable server answers for it (or, as the IP kit's
        check after bring-up, nobody on the subnet answers from here: what was added is
        removed, what was there is left)."""
        holder = self.network.answers(instance.tag, self.server)
        if holder is not None:
            return KitResult(Outcome.FAILED_NODE, f"answered by {holder}", step="unique")
        if self._fails("restore", instance.tag):
            return KitResult(Outcome.FAILED_NODE, "restore failed (told to)", step="restore")
        if self.server in self.network.silent:
            return self._nobody(Outcome.FAILED_NODE, "check after bring-up failed at ")
        self.network.active.setdefault(self.server, set()).add(instance.tag)
        return KitResult.success(f"{instance.tag} active on {self.server}")

    def remove(self, instance: Instance) -> KitResult:
        """Not active here any more."""
        if self._fails("remove", instance.tag):
            return KitResult(Outcome.FAILED_NODE, "remove failed (told to)", step="remove")
        self.network.active.get(self.server, set()).discard(instance.tag)
        return KitResult.success(f"{instance.tag} inactive on {self.server}")

    def quick_check(self, instance: Instance) -> KitResult:
        """Healthy while active and not told to fail."""
        active = instance.tag in self.network.active.get(self.server, set())
        if not active or self._fails("quick_check", instance.tag):
            return KitResult(Outcome.FAILED_LOCAL, "check failed", step="check")
        if self.server in self.network.silent:
            return self._nobody(Outcome.FAILED_LOCAL)
        return KitResult.success("healthy")

    def _nobody(self, outcome: Outcome, before: str = "") -> KitResult:
        return KitResult(
            outcome,
            f"{before}reachability: nobody answered a ping of 198.18.0.255 from {self.server}",
            step="reachability",
            details={"no_responder": True, "subnet": SUBNET},
        )

    def reach_from_here(self, instance: Instance) -> KitResult:
        """The IP kit's test of the subnet from this server's own address."""
        if self.server in self.network.unsure:
            return KitResult(
                Outcome.FAILED_LOCAL, f"no address of {SUBNET} here to test from", step="source"
            )
        if self.server in self.network.silent:
            return self._nobody(Outcome.FAILED_LOCAL)
        return KitResult.success(f"a responder on {SUBNET} answered {self.server}")

    def recover(self, instance: Instance) -> KitResult:
        """Restore again (a failure says so, keeping why, as the IP kit's does)."""
        result = self.restore(instance)
        if result.ok:
            return result
        return KitResult(
            Outcome.FAILED_NODE,
            f"local recovery failed: {result.reason}",
            step=result.step,
            details=result.details,
        )

    def probe(self, instance: Instance) -> bool:
        """Active here?"""
        return instance.tag in self.network.active.get(self.server, set())

    def time_limit(self, instance: Instance, action: str) -> float:
        """Everything is immediate."""
        return 5.0


class FakeNode:
    """What ClusterService needs of a ClusterNode, over a FakeNetwork."""

    def __init__(self, me: str, network: FakeNetwork, table: PeerTable, tunables: Tunables):
        self.me = me
        self.network = network
        self.table = table
        self.tunables = tunables
        self.handlers: dict[str, Callable[[str, dict[str, Any]], Awaitable[None] | None]] = {}
        self.methods: dict[str, Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]] = {}
        self.listeners: list[Callable[[str, bool], None]] = []
        self.reconnect_listeners: list[Callable[[str], None]] = []
        self.restart_listeners: list[Callable[[str], None]] = []
        self.dropped = 0
        self.tasks: set[asyncio.Future[Any]] = set()
        self.peers: dict[str, Any] = {}  # ClusterNode's comm paths by peer: none here
        network.nodes[me] = self

    # -- membership, as the heartbeats would tell it ----------------------------------

    def liveness(self, peer: str, alive: bool) -> None:
        """The heartbeats' verdict on `peer` changed (or not)."""
        if self.table.alive_changed(peer, alive):
            for listener in self.listeners:
                listener(peer, alive)
            if alive:
                for resync in self.reconnect_listeners:
                    resync(peer)

    def alive(self) -> set[str]:
        """See ClusterNode.alive."""
        return self.table.alive()

    def votes(self) -> tuple[int, int]:
        """See ClusterNode.votes."""
        return self.table.votes()

    def has_quorum(self) -> bool:
        """See ClusterNode.has_quorum."""
        return self.table.has_quorum(str(self.tunables.get("QUORUM")))

    def mark_ready(self) -> None:
        """Nothing to tell: the fake has no heartbeats."""

    def servers(self) -> list[dict[str, Any]]:
        """Servers for status."""
        return [
            {
                "name": n,
                "alive": n == self.me or self.table.is_alive(n),
                "local": n == self.me,
                "witness": False,
                "comm_paths": [],
            }
            for n in [self.me, *self.table.peers]
        ]

    def quorum(self) -> dict[str, Any]:
        """Quorum for status."""
        seen, total = self.votes()
        return {"mode": self.tunables.get("QUORUM"), "votes": seen, "of": total}

    # -- messages ------------------------------------------------------------------------

    def _deliver(self, peer: str, kind: str, data: dict[str, Any]) -> None:
        target = self.network.nodes.get(peer)
        if target is None or not self.network.reachable(self.me, peer):
            return
        handler = target.handlers.get(kind)
        if handler is not None:
            result = handler(self.me, data)
            if result is not None:
                task = asyncio.ensure_future(result)
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)

    def send(self, peer: str, kind: str, data: dict[str, Any], every_path: bool = False) -> bool:
        """Deliver a one-way message on the next loop turn."""
        if not self.network.reachable(self.me, peer):
            return False
        asyncio.get_running_loop().call_soon(self._deliver, peer, kind, data)
        return True

    def broadcast(self, kind: str, data: dict[str, Any], every_path: bool = True) -> None:
        """Send to every peer."""
        for peer in self.table.peers:
            self.send(peer, kind, data)

    async def request(
        self, peer: str, method: str, params: dict[str, Any], timeout: float = 60.0
    ) -> dict[str, Any]:
        """Run `method` on `peer` (at once), or OpError when it cannot be reached."""
        target = self.network.nodes.get(peer)
        if target is None or not self.network.reachable(self.me, peer):
            raise OpError("server", f"{peer} is not reachable", status=503)
        handler = target.methods.get(method)
        if handler is None:
            raise OpError("method", f"{method!r} is not known to {peer}")
        return await handler(self.me, params)


@dataclass
class Member:
    """One server of a component cluster."""

    name: str
    engine: Engine
    node: FakeNode
    service: ClusterService
    failover: Failover
    kit: FakeKit
    tunables_path: Path
    monitor: Monitor


class ComponentCluster:
    """Servers with real engines over a fake network and a fake clock (see the module)."""

    def __init__(self, network: FakeNetwork, clock: FakeClock) -> None:
        self.network = network
        self.clock = clock
        self.members: dict[str, Member] = {}

    @classmethod
    async def start(
        cls,
        directory: Path,
        names: Iterable[str],
        tunables: str = "",
        witnesses: Iterable[str] = (),
    ) -> ComponentCluster:
        """Servers called `names` (and witnesses, which vote and hold nothing), all
        reachable, ready, with `tunables` (KEY=VALUE lines) in every tunables file."""
        cluster = cls(FakeNetwork(), FakeClock())
        everyone = [*names, *witnesses]
        for name in everyone:
            cluster._add(directory, name, everyone, tunables, name in set(witnesses))
        cluster.network.changed()
        for member in cluster.members.values():
            member.service.mark_ready()
        await cluster.settle()
        return cluster

    def _add(
        self, directory: Path, name: str, everyone: list[str], tunables: str, witness: bool
    ) -> None:
        home = directory / name
        home.mkdir(parents=True, exist_ok=True)
        path = home / "tunables"
        path.write_text(tunables)
        settings = Tunables(path)
        db = open_db(home / "ipkeeper.db")
        table = PeerTable(name, [(n, False) for n in everyone if n != name], clock=self.clock)
        kit = FakeKit(name, self.network)
        engine = Engine(
            name, Repo(db), EventLog(db, name, settings), KitRegistry(kit), settings, table=table
        )
        engine.witness = witness
        engine.view.clock = self.clock
        node = FakeNode(name, self.network, table, settings)
        service = ClusterService(node, engine)  # type: ignore[arg-type]
        engine.peers = service
        failover = Failover(engine, clock=self.clock)
        service.on_peer.append(failover.peer_changed)
        monitor = Monitor(engine, failover.local_failure, NoResponder(engine, clock=self.clock))
        self.members[name] = Member(name, engine, node, service, failover, kit, path, monitor)

    # -- the cluster's definitions ---------------------------------------------------------

    def define(self, tag: str, priorities: dict[str, int], switchback: str = "intelligent") -> str:
        """A resource extended to every server of `priorities` (OSU everywhere); its id."""
        rid = f"id-{tag}"
        record = ResourceRecord(
            rid,
            "fake",
            switchback,
            1,
            tuple(InstanceRecord(rid, s, tag, p, {}) for s, p in sorted(priorities.items())),
            time.time(),
        )
        for member in self.members.values():
            repo = member.engine.repo
            with repo.db.transaction():
                repo.insert_resource(record)
                if member.name in priorities:
                    repo.set_state(rid, ResourceState.OSU, "defined")
        return rid

    async def bring_up(self, server: str, tag: str) -> None:
        """Bring `tag`'s hierarchy in service on `server` (as an administrator would)."""
        engine = self.members[server].engine
        rec = engine.repo.resource_by_tag(tag)
        assert rec is not None
        await hierarchy_up(engine, engine.hierarchy_of(rec.id), "component test")
        await self.settle()

    # -- faults ---------------------------------------------------------------------------

    def kill(self, server: str) -> None:
        """`server`'s daemon stops (frozen or killed); what it had active stays active, and
        still answers on the LAN."""
        self.network.dead.add(server)
        self.network.changed()

    def crash(self, server: str) -> None:
        """`server` crashes: its daemon and everything it had active are gone."""
        self.network.active.pop(server, None)
        self.kill(server)

    def revive(self, server: str) -> None:
        """`server`'s daemon answers again, as it was (it was only frozen or cut off)."""
        self.network.dead.discard(server)
        self.network.changed()

    async def restart(self, server: str) -> None:
        """`server`'s daemon starts again, as ipkeeperd does: it hears from its peers,
        reconciles its store with what is active, then reports its states as true."""
        member = self.members[server]
        member.service.ready = False
        self.revive(server)
        for _ in range(5):
            await asyncio.sleep(0)
        await reconcile(member.engine)
        member.service.mark_ready()
        await self.settle()

    def partition(self, a: str, b: str) -> None:
        """`a` and `b` cannot reach each other (each may still reach others)."""
        self.network.cut.add(frozenset((a, b)))
        self.network.changed()

    def heal(self, a: str, b: str) -> None:
        """`a` and `b` reach each other again."""
        self.network.cut.discard(frozenset((a, b)))
        self.network.changed()

    # -- looking ----------------------------------------------------------------------------

    def holders(self, tag: str) -> list[str]:
        """Servers where `tag` is active."""
        return sorted(s for s, tags in self.network.active.items() if tag in tags)

    def state(self, server: str, tag: str) -> str | None:
        """`tag`'s state on `server`, as that server recorded it."""
        engine = self.members[server].engine
        rec = engine.repo.resource_by_tag(tag)
        st = engine.repo.local_state(rec.id) if rec else None
        return st.state.value if st else None

    def events(self, server: str, kind: str | None = None) -> list[str]:
        """`server`'s event messages (of one kind)."""
        log = self.members[server].engine.events
        return [e.message for e in log.recent(10_000) if kind is None or e.kind == kind]

    # -- running -----------------------------------------------------------------------------

    async def check(self, server: str) -> None:
        """One round of `server`'s health checks of what it has in service (as its monitor
        would run every CHECK_INTERVAL), then what their failures start, until quiet."""
        monitor = self.members[server].monitor
        monitor.check_now()
        monitor._start(monitor._take_due(time.monotonic()))
        while monitor._tasks:
            await asyncio.wait(list(monitor._tasks), timeout=5)
        await self.settle()

    async def settle(self, passes: int = 50) -> None:
        """Run every live server's decision passes, and what they start, until quiet."""
        for _ in range(passes):
            for name, member in self.members.items():
                if name not in self.network.dead:
                    member.failover.evaluate()
            for _ in range(3):
                await asyncio.sleep(0)
            pending = self._pending()
            if pending:
                await asyncio.wait(pending, timeout=5)
                continue
            if not any(m.failover.view.has_news() or m.failover._deferred for m in self._live()):
                return

    def _live(self) -> list[Member]:
        return [m for n, m in self.members.items() if n not in self.network.dead]

    def _pending(self) -> list[asyncio.Future[Any]]:
        found: list[asyncio.Future[Any]] = []
        for member in self.members.values():
            found += [t for t in member.failover._tasks if not t.done()]
            found += [t for t in member.node.tasks if not t.done()]
        return found

    async def close(self) -> None:
        """Stop the engines' worker threads and close the stores."""
        for member in self.members.values():
            member.engine.close()
            member.engine.repo.db.close()
