"""What an address conflict in service means for the resource (issue 11, item 9).

The IP kit's listener (kits/ip/conflict.py) hears another MAC announce a VIP
held here, defends it (RFC 5227 section 2.4, one announcement per
DEFEND_INTERVAL) and, when the other host has been silent for
DEFEND_INTERVAL, announces it again (reclaim). This module is the engine's
side of it:

- it tells the listener which addresses to watch: every IP resource in
  service here (a repo state listener, so adoption, takeover, switchback and
  administration are all covered);
- a conflict that begins is an event naming the address and the other MAC,
  a metric, and the resource goes ISU with the reason "address conflict
  with <MAC> ...; defending": while it lasts, a failing check is not handed
  over (another server's unique-address check would refuse the address, and
  giving it up hands it to the other host);
- when the neighbour table maps that MAC to a peer's comm-path address, the
  event names the peer and nothing else changes: a split brain, which the
  cluster's own rules resolve (issue 11, item 2); the listener's rate limit
  keeps the two servers from fighting with announcements;
- a conflict that ends is an event ("... reclaimed"), and the resource goes
  back to ISP after a check (a failing one is then handled as usual).

The decisions are the pure functions `on_began` and `on_ended`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

from ipkeeper.engine import addresses
from ipkeeper.engine.core import Engine
from ipkeeper.kits.ip.conflict import Conflict, Report
from ipkeeper.kits.ip.params import IPAddress
from ipkeeper.model.states import KitResult, ResourceState
from ipkeeper.store.repo import ResourceRecord

log = logging.getLogger("ipkeeper.conflicts")

PREFIX = "address conflict"  # how the reason of a resource kept ISU by a conflict begins
EVENT = "address-conflict"
Key = tuple[str, IPAddress]


def kept_reason(mac: str, ifname: str) -> str:
    """The reason of a resource kept in service during a conflict."""
    return f"{PREFIX} with {mac} on {ifname}; defending (not handed over while it lasts)"


def on_began(state: ResourceState | None) -> ResourceState | None:
    """The state a resource in `state` takes when a conflict over its address begins:
    ISU from ISP (kept in service, not protected by failover); None: unchanged."""
    return ResourceState.ISU if state is ResourceState.ISP else None


def on_ended(state: ResourceState | None, reason: str, again: bool) -> bool:
    """Whether a resource goes back to ISP once its conflict ended: it was kept ISU by the
    conflict (not by an administrator) and no new conflict (`again`) began meanwhile."""
    return state is ResourceState.ISU and reason.startswith(PREFIX) and not again


def keep_in_conflict(engine: Engine, rec: ResourceRecord, result: KitResult) -> bool:
    """The monitor's hook, with the hierarchy's locks held: when `rec`'s check failed
    while its address is in conflict, keep it in service here (ISU) instead of
    recovering or handing it over; True when so."""
    if rec.kind != "ip":
        return False
    kit = engine.ip_kit()
    spec = kit.spec(engine.instance(rec))
    found = kit.conflicts.active(spec.interface, spec.address)
    if found is None or found.mac in kit.conflicts.peer_macs:
        return False  # none, or a split brain: the cluster's rules resolve it
    reason = f"{kept_reason(found.mac, spec.interface)}; check failed ({result.reason})"
    engine.record(rec, ResourceState.ISU, EVENT, reason, step=result.step)
    return True


class ConflictGuard:
    """Keeps the kit's listener watching what is in service here, and answers its
    reports (see the module docstring)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.kit = engine.ip_kit()
        self._where: dict[str, Key] = {}  # resource id -> (interface, address) watched
        self._rid: dict[Key, str] = {}
        self.active: dict[str, str] = {}  # resource id -> the other MAC, while in conflict
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> ConflictGuard:
        """Watch every IP resource in service here from now on; reports come to `loop`."""
        self._loop = loop

        def tell(report: Report) -> None:  # on the listener's thread
            loop.call_soon_threadsafe(self.reported, report)

        self.kit.conflicts.on_report = tell
        self.engine.repo.listeners.append(self.state_changed)
        for rid, st in self.engine.repo.local_states().items():
            self.state_changed(rid)
            if on_ended(st.state, st.reason, again=False):
                self._spawn(self._resume(rid))
        return self

    def state_changed(self, rid: str) -> None:
        """A local state changed: watch the resource's address while it is in service."""
        engine = self.engine
        rec = engine.repo.resource(rid)
        st = engine.repo.local_state(rid)
        key: Key | None = None
        wanted = rec is not None and rec.kind == "ip" and st is not None and st.state.in_service
        if wanted and rec is not None and rec.instance(engine.server) is not None:
            spec = self.kit.spec(engine.instance(rec))
            if spec.restore_recover:
                key = (spec.interface, spec.address)
        old = self._where.get(rid)
        if old == key:
            return
        if old is not None:
            del self._where[rid]
            self._rid.pop(old, None)
            self.kit.conflicts.unwatch(old[0], [old[1]])
            self._settled(rid)
        if key is not None:
            self._where[rid] = key
            self._rid[key] = rid
            self.kit.conflicts.watch(*key)

    def _settled(self, rid: str) -> None:
        if self.active.pop(rid, None) is not None:
            self.engine.metrics.address_conflicts_active.set(len(self.active))

    def reported(self, report: Report) -> None:
        """On the loop: a conflict began or ended on one watched address."""
        rid = self._rid.get((report.ifname, report.address))
        if rid is None:
            return
        if report.kind == "began":
            self.active[rid] = report.mac
            self.engine.metrics.address_conflicts_active.set(len(self.active))
            self._spawn(self._began(rid, report))
        else:
            self._settled(rid)
            self._spawn(self._ended(rid, report))

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _whose(self, mac: str) -> str | None:
        """The peer whose comm-path address the neighbour table maps to `mac`, if any."""
        try:
            for addr in self.kit.neighbour_addresses(mac):
                peer = addresses.peer_owning(self.engine, addr)
                if peer is not None:
                    return peer
        except Exception as exc:  # only a nicer message is lost
            log.debug("whose is %s: %s", mac, exc)
        return None

    async def _began(self, rid: str, report: Report) -> None:
        engine = self.engine
        try:
            rec = engine.repo.resource(rid)
            if rec is None:
                return
            tag = rec.tag_on(engine.server)
            loop = asyncio.get_running_loop()
            peer = await loop.run_in_executor(engine.pool, self._whose, report.mac)
            interval = engine.tunables.get("DEFEND_INTERVAL")
            engine.metrics.address_conflicts.labels(tag).inc()
            if peer is not None:
                self.kit.conflicts.peer_macs[report.mac] = peer
                engine.events.add(
                    EVENT,
                    f"address conflict: {report.address} also announced by {report.mac} "
                    f"({peer}, a server of this cluster) on {report.ifname}: a split brain, "
                    f"which the cluster resolves (the worse priority gives it up, the winner "
                    f"announces it); not defended further",
                    tag=tag,
                    mac=report.mac,
                    server=peer,
                )
                return
            engine.events.add(
                EVENT,
                f"address conflict: {report.address} also announced by {report.mac} on "
                f"{report.ifname}; defending it (one announcement per DEFEND_INTERVAL, "
                f"{interval:g}s) and not handing it over while it lasts",
                tag=tag,
                mac=report.mac,
            )
            async with engine.locks.hold(lambda: engine.hierarchy_of(rid)):
                st = engine.repo.local_state(rid)
                new = on_began(st.state if st else None)
                if new is not None and st is not None and not st.pending and rid in self.active:
                    engine.record(rec, new, EVENT, kept_reason(report.mac, report.ifname))
        except Exception:
            log.exception("reporting the address conflict of %s failed", rid)

    async def _ended(self, rid: str, report: Report) -> None:
        engine = self.engine
        try:
            rec = engine.repo.resource(rid)
            if rec is None:
                return
            tag = rec.tag_on(engine.server)
            interval = engine.tunables.get("DEFEND_INTERVAL")
            peer = self.kit.conflicts.peer_macs.get(report.mac)
            if report.reclaimed:
                how = f"reclaimed (announced again on {report.ifname})"
            elif peer is not None:
                how = (
                    f"{peer} is a server of this cluster: the split brain's resolution announces it"
                )
            else:
                how = "not reclaimed (no longer held here)"
            engine.events.add(
                EVENT,
                f"address conflict ended: {report.address} not announced by {report.mac} for "
                f"{interval:g}s ({report.frames} conflicting frames in "
                f"{report.last - report.first:.1f}s); {how}",
                tag=tag,
                mac=report.mac,
            )
            await self._back(rid, f"{PREFIX} with {report.mac} ended: {how}")
        except Exception:
            log.exception("ending the address conflict of %s failed", rid)

    async def _back(self, rid: str, done: str) -> None:
        """ISP again for a resource the conflict kept ISU, after a check now."""
        engine = self.engine
        rec = engine.repo.resource(rid)
        if rec is None:
            return
        async with engine.locks.hold(lambda: engine.hierarchy_of(rid)):
            st = engine.repo.local_state(rid)
            if st is None or not on_ended(st.state, st.reason, rid in self.active):
                return
            result = await engine.act(rec, "quick_check")
            st = engine.repo.local_state(rid)
            if st is None or not on_ended(st.state, st.reason, rid in self.active):
                return
            why = (
                f"{done}; {result.reason}"
                if result.ok
                else f"{done}; the check fails ({result.reason}): handled as any failure"
            )
            engine.record(rec, ResourceState.ISP, EVENT, why)

    async def _resume(self, rid: str) -> None:
        """A resource recorded ISU by a conflict before this daemon started: back to ISP
        once DEFEND_INTERVAL has passed here with no conflict over its address."""
        await asyncio.sleep(float(self.engine.tunables.get("DEFEND_INTERVAL")))
        try:
            rec = self.engine.repo.resource(rid)
            if rec is None or rid in self.active or self.conflict_of(rid) is not None:
                return  # gone, or a conflict again: its end brings it back
            announced = await self.engine.act_many([rec], "announce")
            how = "reclaimed" if announced[0].ok else "not announced again"
            await self._back(rid, f"{PREFIX} not seen since this daemon started: {how}")
        except Exception:
            log.exception("resuming %s after a conflict failed", rid)

    def conflict_of(self, rid: str) -> Conflict | None:
        """The conflict in course for `rid`'s address, if any (for views)."""
        key = self._where.get(rid)
        return self.kit.conflicts.active(*key) if key is not None else None
