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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ipkeeper.config.tunables import Tunables
from ipkeeper.engine.locks import HierarchyLocks
from ipkeeper.engine.peers import Peers, Standalone
from ipkeeper.kits.ip.kit import IPKit
from ipkeeper.kits.registry import KitRegistry
from ipkeeper.metrics import Metrics
from ipkeeper.model.hierarchy import Hierarchy
from ipkeeper.model.resource import Instance
from ipkeeper.model.states import KitResult, Outcome, ResourceState
from ipkeeper.store.events import EventLog
from ipkeeper.store.repo import Repo, ResourceRecord, StoredSet

log = logging.getLogger("ipkeeper.engine")


@dataclass(frozen=True)
class StepResult:
    """How a hierarchy operation ended: ok, or the resource that failed and why."""

    ok: bool
    reason: str
    failed: str | None = None  # resource id
    step: str | None = None


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
    ) -> None:
        self.server = server
        self.repo = repo
        self.events = events
        self.kits = kits
        self.tunables = tunables
        self.locks = HierarchyLocks()
        self.catalog = asyncio.Lock()  # create/delete/depend/extend change what exists
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kit")
        self.busy: dict[str, tuple[str, float]] = {}  # resource id -> (action, started)
        self.last_check: dict[str, tuple[KitResult, float]] = {}  # resource id -> (result, when)
        self.peers: Peers = Standalone(server)
        self.metrics = Metrics()
        self.witness = False  # a witness votes but holds no resources
        # Resources this server gave up after a failure it could not repair, for
        # another server to take over; reported to peers until somebody does
        # (stored: a restart in between must not lose the hand-over).
        self.handed_over = StoredSet(repo, "handed_over")

    def close(self) -> None:
        """Stop the worker threads (running actions finish first)."""
        self.pool.shutdown(wait=False, cancel_futures=True)

    # -- views ---------------------------------------------------------------

    def graph(self) -> Hierarchy:
        """The dependency graph over every resource known here."""
        return self.repo.graph()

    def hierarchy_of(self, resource_id: str) -> set[str]:
        """The ids of the hierarchy `resource_id` belongs to."""
        return self.graph().component(resource_id)

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
        """The kit's view of this server's instance of `rec`."""
        inst = rec.instance(self.server)
        if inst is None:
            raise LookupError(f"{rec.tag_on(self.server)} is not extended to {self.server}")
        return Instance(inst.tag, rec.kind, inst.props)

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

    async def bring_up(self, ids: set[str], why: str) -> StepResult:
        """Bring `ids` in service here, children first; on a failure undo what this did."""
        graph = self.graph()
        brought: list[ResourceRecord] = []
        for rid in graph.up_order(ids):
            rec = self.repo.resource(rid)
            current = self.repo.local_state(rid)
            if rec is None or current is None:
                continue
            if current.state.in_service and current.pending is None:
                continue
            marker = "create" if current.pending == "create" else "restore"
            self.repo.set_state(rid, current.state, current.reason, pending=marker)
            result = await self.act(rec, "restore")
            if result.ok:
                self.record(
                    rec,
                    self.in_service_state(rec),
                    "restore",
                    f"{why}: {result.reason}",
                    timings=result.timings,
                )
                brought.append(rec)
                continue
            if result.step == "unique":
                # Nothing is wrong here: someone else answers for the address.
                state, kind = ResourceState.OSU, "not-taken"
            else:
                state, kind = ResourceState.OSF, "restore-failed"
                await self.act(rec, "remove")  # whatever the failed restore left behind
            # A creation that failed is deleted (at once, or at the next start).
            after = "delete" if marker == "create" else None
            self.record(
                rec, state, kind, f"{why}: {result.reason}", pending=after, step=result.step
            )
            for done in reversed(brought):
                self.repo.set_state(
                    done.id, self.in_service_state(done), "being undone", pending="remove"
                )
                undo = await self.act(done, "remove")
                state = ResourceState.OSU if undo.ok else ResourceState.OSF
                self.record(
                    done,
                    state,
                    "remove",
                    f"undone because {rec.tag_on(self.server)} failed: {undo.reason}",
                )
            return StepResult(False, result.reason, failed=rid, step=result.step)
        return StepResult(True, why)

    async def take_down(
        self, ids: set[str], why: str, final: ResourceState = ResourceState.OSU
    ) -> StepResult:
        """Take `ids` out of service here, parents first; stops at the first failure."""
        graph = self.graph()
        for rid in graph.down_order(ids):
            rec = self.repo.resource(rid)
            current = self.repo.local_state(rid)
            if rec is None or current is None:
                continue
            if not current.state.in_service and current.pending is None:
                if final is ResourceState.OSF and current.state is not ResourceState.OSF:
                    self.record(rec, final, "state", why)
                continue
            # A deletion stays marked until the rows are gone, so a crash finishes it.
            marker = "delete" if current.pending == "delete" else "remove"
            self.repo.set_state(rid, current.state, current.reason, pending=marker)
            result = await self.act(rec, "remove")
            if not result.ok:
                self.record(rec, ResourceState.OSF, "remove-failed", f"{why}: {result.reason}")
                return StepResult(False, result.reason, failed=rid, step=result.step)
            kept = marker if marker == "delete" else None
            self.record(rec, final, "remove", f"{why}: {result.reason}", pending=kept)
        return StepResult(True, why)
