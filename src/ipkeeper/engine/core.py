"""The engine: the only part of ipkeeper that changes resource state.

It runs kit actions (in worker threads, under each action's timeout), brings
hierarchies up children first and down parents first, records every state
change in the store before reporting it, and writes the reason of each step
to the event log (R29).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from ipkeeper.config.tunables import Tunables
from ipkeeper.engine import steps
from ipkeeper.engine.clusterview import ViewBuilder
from ipkeeper.engine.locks import HierarchyLocks
from ipkeeper.engine.peers import Peers, Standalone
from ipkeeper.engine.peertable import PeerTable
from ipkeeper.engine.steps import StepResult
from ipkeeper.kits.base import Kit
from ipkeeper.kits.ip.kit import IPKit
from ipkeeper.kits.registry import KitRegistry
from ipkeeper.metrics import Metrics
from ipkeeper.model.hierarchy import Hierarchy
from ipkeeper.model.resource import Instance
from ipkeeper.model.states import KitResult, Outcome, ResourceState
from ipkeeper.store.events import EventLog
from ipkeeper.store.repo import Repo, ResourceRecord, StoredSet
from ipkeeper.threads import name_this_thread

log = logging.getLogger("ipkeeper.engine")


class Engine:
    """Acts on this server's instances; see the module docstring."""

    def __init__(
        self,
        server: str,
        repo: Repo,
        events: EventLog,
        kits: KitRegistry,
        tunables: Tunables,
        workers: int = 8,
        table: PeerTable | None = None,
    ) -> None:
        self.server = server
        self.repo = repo
        self.events = events
        self.kits = kits
        self.tunables = tunables
        self.locks = HierarchyLocks()
        self.catalog = asyncio.Lock()  # create/delete/depend/extend change what exists
        self.pool = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="ipk-kit", initializer=name_this_thread
        )
        self.busy: dict[str, tuple[str, float]] = {}  # resource id -> (action, started)
        self.last_check: dict[str, tuple[KitResult, float]] = {}  # resource id -> (result, when)
        # Resource id -> why it is kept in service unprotected (engine/noresponder.py).
        self.unprotected: dict[str, str] = {}
        self._instances: dict[str, tuple[ResourceRecord, Instance]] = {}
        self.table = table or PeerTable(server)  # what is known of each peer
        self.peers: Peers = Standalone(server, self.table)
        self.metrics = Metrics()
        self.witness = False  # a witness votes but holds no resources
        # Resources this server gave up after a failure it could not repair, for
        # another server to take over; reported to peers until somebody does
        # (stored: a restart in between must not lose the hand-over).
        self.handed_over = StoredSet(repo, "handed_over")
        # Hierarchies an administrator took out of service: nothing but an
        # administrator brings them back, not even a restart with peers unheard.
        self.withdrawn = StoredSet(repo, "withdrawn")
        self.view = ViewBuilder(
            server, repo, self.table, self.handed_over, withdrawn=self.withdrawn
        )
        self.view.quorum_mode = lambda: str(tunables.get("QUORUM"))

    def close(self) -> None:
        """Stop the worker threads (running actions finish first)."""
        self.pool.shutdown(wait=False, cancel_futures=True)

    # -- views ---------------------------------------------------------------

    def graph(self) -> Hierarchy:
        """The dependency graph over every resource known here."""
        return self.repo.graph()

    def hierarchy_of(self, resource_id: str) -> set[str]:
        """The ids of the hierarchy `resource_id` belongs to."""
        return set(self.view.members_of(resource_id))

    def tag(self, resource_id: str) -> str:
        """This server's tag for a resource (for messages)."""
        rec = self.repo.resource(resource_id)
        return rec.tag_on(self.server) if rec else resource_id

    def ip_kit(self) -> IPKit:
        """The IP kit, for what only IP resources have (interfaces, ping lists, routes)."""
        kit = self.kits.get("ip")
        assert isinstance(kit, IPKit)
        return kit

    def instance(self, rec: ResourceRecord) -> Instance:
        """The kit's view of this server's instance of `rec` (the same object until the
        definition changes, so kits may keep what they derive from it)."""
        cached = self._instances.get(rec.id)
        if cached is not None and cached[0] is rec:
            return cached[1]
        inst = rec.instance(self.server)
        if inst is None:
            raise LookupError(f"{rec.tag_on(self.server)} is not extended to {self.server}")
        made = Instance(inst.tag, rec.kind, inst.props)
        self._instances[rec.id] = (rec, made)
        return made

    def state(self, resource_id: str) -> ResourceState | None:
        """This server's state of a resource, or None when not extended here."""
        st = self.repo.local_state(resource_id)
        return st.state if st else None

    # -- actions -------------------------------------------------------------

    def timeout(self, rec: ResourceRecord, action: str) -> float:
        """Seconds `action` may take for this resource, as its kit bounds it."""
        return self.kits.get(rec.kind).time_limit(self.instance(rec), action)

    async def act(self, rec: ResourceRecord, action: str) -> KitResult:
        """Run one kit action in a worker thread under its time limit; never raises.

        A thread cannot be stopped: an action that overruns is reported as failed
        only once it has really ended (every kit bounds its own work), so that
        whatever it did can be undone before anything else is decided.
        """
        kit = self.kits.get(rec.kind)
        inst = self.instance(rec)
        limit = self.timeout(rec, action)
        loop = asyncio.get_running_loop()
        tracked = action != "quick_check"
        if tracked:
            self.busy[rec.id] = (action, time.monotonic())
        running = loop.run_in_executor(self.pool, getattr(kit, action), inst)
        try:
            return await asyncio.wait_for(asyncio.shield(running), limit)
        except TimeoutError:
            log.error(
                "[%s@%s] %s overran its %.0fs limit; waiting for it to end",
                inst.tag,
                self.server,
                action,
                limit,
            )
            with contextlib.suppress(Exception):
                await running
            return KitResult(
                Outcome.FAILED_NODE, f"{action} overran its time limit of {limit:.0f}s", step=action
            )
        except Exception as exc:  # a kit bug must not take the daemon down
            log.exception("[%s@%s] %s raised", inst.tag, self.server, action)
            return KitResult(
                Outcome.FAILED_NODE, f"{action} failed unexpectedly: {exc}", step=action
            )
        finally:
            if tracked:
                self.busy.pop(rec.id, None)

    def record(
        self,
        rec: ResourceRecord,
        state: ResourceState,
        kind: str,
        reason: str,
        pending: str | None = None,
        **details: object,
    ) -> None:
        """Store a new state (committed), then log the event that explains it."""
        self.repo.set_state(rec.id, state, reason, pending=pending)
        self.events.add(kind, f"{state.value}: {reason}", tag=rec.tag_on(self.server), **details)

    def in_service_state(self, rec: ResourceRecord) -> ResourceState:
        """ISP, or ISU when the resource is not monitored (restore-and-recover disabled)."""
        if rec.kind == "ip" and not self.instance(rec).props.get("restore_recover", True):
            return ResourceState.ISU
        return ResourceState.ISP

    async def act_many(self, recs: list[ResourceRecord], action: str) -> list[KitResult]:
        """Run one action on many resources at once; results in the same order, never raises.

        A kit that can do many at once (`restore_many`, `remove_many`) gets all of
        its resources in one call, in one worker thread, under the sum of the
        limits of a first one and a small share per further one; for the
        others, each resource's action runs on its own worker thread.
        """
        results: dict[int, KitResult] = {}
        by_kit: dict[str, list[int]] = {}
        for index, rec in enumerate(recs):
            by_kit.setdefault(rec.kind, []).append(index)
        jobs = []
        for kind, indexes in by_kit.items():
            kit = self.kits.get(kind)
            many = getattr(kit, f"{action}_many", None)
            if many is not None:
                jobs.append(self._act_batch(kit, many, [recs[i] for i in indexes], action))
            else:
                jobs.append(self._act_each([recs[i] for i in indexes], action))
        for indexes, found in zip(by_kit.values(), await asyncio.gather(*jobs), strict=True):
            results.update(zip(indexes, found, strict=True))
        return [results[i] for i in range(len(recs))]

    async def _act_each(self, recs: list[ResourceRecord], action: str) -> list[KitResult]:
        return list(await asyncio.gather(*(self.act(rec, action) for rec in recs)))

    async def _act_batch(
        self, kit: Kit, many: Callable[[list[Instance]], list[KitResult]],
        recs: list[ResourceRecord], action: str,
    ) -> list[KitResult]:  # fmt: skip
        instances = [self.instance(rec) for rec in recs]
        limit = kit.time_limit(instances[0], action) + 0.01 * len(recs)
        started = time.monotonic()
        tracked = action != "quick_check"
        for rec in recs if tracked else ():
            self.busy[rec.id] = (action, started)
        running = asyncio.get_running_loop().run_in_executor(self.pool, many, instances)
        try:
            found = await asyncio.wait_for(asyncio.shield(running), limit)
        except TimeoutError:
            log.error(
                "%s of %d resources overran %.0fs; waiting for it to end", action, len(recs), limit
            )
            with contextlib.suppress(Exception):
                await running
            failed = KitResult(
                Outcome.FAILED_NODE, f"{action} overran its time limit of {limit:.0f}s", step=action
            )
            return [failed] * len(recs)
        except Exception as exc:  # a kit bug must not take the daemon down
            log.exception("%s of %d resources raised", action, len(recs))
            failed = KitResult(
                Outcome.FAILED_NODE, f"{action} failed unexpectedly: {exc}", step=action
            )
            return [failed] * len(recs)
        finally:
            for rec in recs if tracked else ():
                self.busy.pop(rec.id, None)
        if len(found) != len(recs):
            failed = KitResult(
                Outcome.FAILED_NODE,
                f"{action}: the kit answered for {len(found)} of {len(recs)}",
                step=action,
            )
            return [failed] * len(recs)
        return found

    async def bring_up(self, ids: set[str], why: str) -> StepResult:
        """Bring `ids` in service here, children first; on a failure undo what this did."""
        return (await steps.bring_up_many(self, [(ids, why)]))[0]

    async def bring_up_many(self, groups: list[tuple[set[str], str]]) -> list[StepResult]:
        """Bring several hierarchies in service here together (see engine/steps.py)."""
        return await steps.bring_up_many(self, groups)

    async def take_down(
        self, ids: set[str], why: str, final: ResourceState = ResourceState.OSU
    ) -> StepResult:
        """Take `ids` out of service here, parents first; stops at the first failure."""
        return await steps.take_down(self, ids, why, final)
