"""The cluster plane as the engine sees it (engine/peers.py), and the requests peers serve.

- States: every change of a local state is sent to every live peer (the full
  snapshot, on every path, coalesced per loop turn); a peer's last report is
  kept, and marked stale while it is not alive.
- Catalog: on (re)joining, peers exchange digests and send each other what
  the other lacks (cluster/catalog.py); conflicts are reported, not merged.
- Requests served here: hierarchy.up/down/move, extend.check, catalog.apply,
  pinglist.seed, show, interfaces, used, events (this server's history), create,
  addresses (this server's own), reach (can this server find a responder on a
  resource's subnet: engine/noresponder.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ipkeeper.cluster import catalog
from ipkeeper.cluster.commpath import CommPath
from ipkeeper.cluster.node import ClusterNode
from ipkeeper.cluster.versions import OURS, VersionWatch, differs, peer_version
from ipkeeper.engine import admin, history, views
from ipkeeper.engine.addresses import own_here
from ipkeeper.engine.apply import apply
from ipkeeper.engine.core import Engine
from ipkeeper.engine.create import create_on, used_by
from ipkeeper.engine.errors import OpError, StoreUnavailable
from ipkeeper.engine.extend import extend
from ipkeeper.engine.extendcheck import check_extension
from ipkeeper.engine.moves import hierarchy_down, hierarchy_up, move_here
from ipkeeper.engine.noresponder import reach_here
from ipkeeper.engine.peertable import Reported
from ipkeeper.engine.reconcile import reconcile
from ipkeeper.kits.ip.interfaces import InterfaceInfo
from ipkeeper.model.states import EXTENDED_HERE

log = logging.getLogger("ipkeeper.cluster")


Method = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


def _store_refusal(method: Method) -> Method:
    """A request that needed a write this server's disk refused is answered as a refusal
    (503, field `store`), like the API answers it, not as a failure."""

    async def run(peer: str, params: dict[str, Any]) -> dict[str, Any]:
        try:
            return await method(peer, params)
        except StoreUnavailable as exc:
            raise OpError(exc.field, exc.reason, exc.status) from None

    return run


class ClusterService:
    """Implements engine.peers.Peers over a ClusterNode, feeding the engine's peer table."""

    def __init__(self, node: ClusterNode, engine: Engine) -> None:
        self.node = node
        self.engine = engine
        self.table = engine.table
        # Until this server has reconciled its store with its kernel at start-up,
        # its recorded states may be stale: it reports them as not ready, and
        # peers take it to hold nothing yet.
        self.ready = False
        self._background: set[asyncio.Future[Any]] = set()
        self.boot = uuid.uuid4().hex  # this run of the daemon, so peers can order our reports
        self._sequence = 0
        self.on_peer: list[Callable[[str, bool], None]] = []
        self._publish_pending = False
        node.handlers.update(
            {"states": self._states, "catalog.digest": self._digest, "catalog.docs": self._docs}
        )
        methods: dict[str, Method] = {
            "hierarchy.up": self._up,
            "hierarchy.down": self._down,
            "hierarchy.move": self._move,
            "extend.check": self._extend_check,
            "catalog.apply": self._catalog_apply,
            "pinglist.seed": self._pinglist_seed,
            "show": self._show,
            "interfaces": self._interfaces,
            "used": self._used,
            "setting": self._setting,
            "pinglist": self._pinglist,
            "extend": self._extend,
            "apply": self._apply,
            "events": self._events,
            # issue 14: create anywhere, the ping list's cluster addresses
            "create": self._create,
            "addresses": self._addresses,
            # issue 11, item 8: a responder on the subnet, seen from here?
            "reach": self._reach,
        }
        node.methods.update({name: _store_refusal(m) for name, m in methods.items()})
        node.listeners.append(self._peer_changed)
        node.reconnect_listeners.append(self._resync)
        self.versions = VersionWatch()
        node.reconnect_listeners.append(self._check_version)
        node.restart_listeners.append(self._peer_restarted)
        engine.repo.listeners.append(self._local_changed)

    # -- Peers protocol ------------------------------------------------------

    def alive(self) -> set[str]:
        """Servers alive now, this one included."""
        return self.table.alive()

    @property
    def reported(self) -> set[str]:
        """Peers whose states have arrived in their current life (ready or not)."""
        return {n for n, r in self.table.peers.items() if r.reported}

    @property
    def dropped(self) -> int:
        """Cluster frames dropped so far (for metrics)."""
        return self.node.dropped

    def has_quorum(self) -> bool:
        """See ClusterNode.has_quorum."""
        return self.node.has_quorum()

    def has_reported(self, server: str) -> bool:
        """True once `server` has reported ready states since it became alive."""
        return self.table.has_reported(server)

    def states_of(self, server: str) -> Mapping[str, Reported]:
        """The last states `server` reported (nothing while it is still starting)."""
        return self.table.states_of(server)

    def forget_holding(self, server: str, resource_ids: set[str]) -> bool:
        """See engine.peers.Peers.forget_holding (only for servers not alive)."""
        return self.table.forget_holding(server, resource_ids)

    def mark_ready(self) -> None:
        """Start-up reconciliation is done: from now on this server's states are true."""
        self.ready = True
        self.node.mark_ready()
        self._publish_states()

    def servers(self) -> list[dict[str, Any]]:
        """Servers and comm paths for status, with the ipkeeper version each one runs."""
        found = self.node.servers()
        for server in found:
            version = OURS if server["local"] else peer_version(self._paths(server["name"]))
            server.update(version=version, version_mismatch=differs(version))
        return found

    def _paths(self, peer: str) -> list[CommPath]:
        link = self.node.peers.get(peer)
        return list(link.paths) if link is not None else []

    def _check_version(self, peer: str) -> None:
        """A channel to `peer` connected: say so when its version is news (versions.py)."""
        message = self.versions.news(peer, peer_version(self._paths(peer)))
        if message is not None:
            self.engine.events.add("version", message)

    def quorum(self) -> dict[str, Any]:
        """Quorum for status."""
        return self.node.quorum()

    async def request(
        self, server: str, method: str, params: dict[str, Any], timeout: float = 60.0
    ) -> dict[str, Any]:
        """Run `method` on `server`."""
        return await self.node.request(server, method, params, timeout)

    def _docs_for(self, resource_ids: list[str]) -> list[dict[str, Any]]:
        repo = self.engine.repo
        return [catalog.export(repo, rec) for rid in resource_ids if (rec := repo.resource(rid))]

    def publish_catalog(self, resource_ids: list[str]) -> None:
        """Send these definitions to every live peer."""
        self.node.broadcast(
            "catalog.docs",
            {"docs": self._docs_for(resource_ids), "tombstones": []},
            every_path=True,
        )

    def publish_deletion(self, resource_id: str, version: int, tag: str) -> None:
        """Tell every live peer a resource was deleted."""
        tomb = {"id": resource_id, "version": version, "tag": tag}
        self.node.broadcast("catalog.docs", {"docs": [], "tombstones": [tomb]}, every_path=True)

    async def push_catalog(self, server: str, resource_ids: list[str]) -> None:
        """Send definitions to `server` and wait until it stored them."""
        await self.node.request(
            server, "catalog.apply", {"docs": self._docs_for(resource_ids), "tombstones": []}
        )

    # -- states ----------------------------------------------------------------

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """This server's states, as peers receive them."""
        busy = self.engine.busy
        return {
            rid: {
                "state": st.state.value,
                "reason": st.reason,
                "since": st.since,
                "pending": st.pending,
                "busy": busy[rid][0] if rid in busy else None,
                "handover": rid in self.engine.handed_over,
            }
            for rid, st in self.engine.repo.local_states().items()
        }

    def _local_changed(self, _rid: str) -> None:
        if self._publish_pending:
            return
        self._publish_pending = True
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().call_soon(self._publish_states)

    def _report(self) -> dict[str, Any]:
        self._sequence += 1
        return {
            "boot": self.boot,
            "seq": self._sequence,
            "ready": self.ready,
            "states": self.snapshot() if self.ready else {},
            "sees": self.table.seen_alive(),
        }

    def _publish_states(self) -> None:
        self._publish_pending = False
        self.node.broadcast("states", self._report())

    def _states(self, peer: str, data: dict[str, Any]) -> None:
        # Reports go on every path; the table keeps only the newest of each run.
        states = data.get("states", {})
        sees = data.get("sees")
        self.table.report(
            peer,
            str(data.get("boot", "")),
            int(data.get("seq", 0)),
            bool(data.get("ready")),
            states if isinstance(states, dict) else {},
            [s for s in sees if isinstance(s, str)] if isinstance(sees, list) else None,
        )

    def _resync(self, peer: str) -> None:
        """Exchange digests and states again (a path came back or was re-established)."""
        self.node.send(peer, "catalog.digest", catalog.digest(self.engine.repo), every_path=True)
        self.node.send(peer, "states", self._report(), every_path=True)

    def _peer_restarted(self, peer: str) -> None:
        self.table.restarted(peer)
        self._resync(peer)

    def _peer_changed(self, peer: str, alive: bool) -> None:
        if alive:
            self._resync(peer)
        # Every live peer learns this server's new membership (for agreed deaths).
        self._publish_states()
        for listener in self.on_peer:
            listener(peer, alive)

    # -- catalog -----------------------------------------------------------------

    def _digest(self, peer: str, data: dict[str, Any]) -> None:
        repo = self.engine.repo
        plan = catalog.plan_sync(catalog.digest(repo), data)
        for rid in plan.conflicts:
            self.engine.events.add(
                "conflict",
                f"{peer} holds a different definition at the same version; keeping ours, resolve by hand",
                tag=self.engine.tag(rid),
            )
        tombs = [
            {"id": rid, "version": version, "tag": tag}
            for rid, (tag, version) in repo.tombstones().items()
            if rid in plan.tombstones
        ]
        if plan.docs or tombs:
            docs = {"docs": self._docs_for(plan.docs), "tombstones": tombs}
            self.node.send(peer, "catalog.docs", docs, every_path=True)

    def _docs(self, peer: str, data: dict[str, Any]) -> None:
        self.apply_docs(peer, data)

    def apply_docs(self, peer: str, data: dict[str, Any]) -> dict[str, str]:
        """Store definitions and deletions from `peer`; what happened to each."""
        engine = self.engine
        outcome: dict[str, str] = {}
        with engine.repo.db.transaction():  # one commit, one read-back, for the whole batch
            self._apply_batch(peer, data, outcome)
        learnt = {
            rid
            for rid, result in outcome.items()
            if result == catalog.Applied.APPLIED.value
            and (st := engine.repo.local_state(rid)) is not None
            and st.reason == EXTENDED_HERE
            and st.pending is None
        }
        if learnt and self.ready:
            # Extended here after start-up (or this server's store was rebuilt from the
            # peer's): what is already active here is adopted, not left unmanaged.
            task = asyncio.ensure_future(reconcile(engine, learnt))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        return outcome

    def _apply_batch(self, peer: str, data: dict[str, Any], outcome: dict[str, str]) -> None:
        engine = self.engine
        for doc in catalog.order_children_first(list(data.get("docs", []))):
            result = catalog.apply(engine.repo, doc, engine.server)
            outcome[doc["id"]] = result.value
            self._log_applied(
                peer,
                doc["id"],
                doc["instances"][0]["tag"] if doc["instances"] else doc["id"],
                result,
            )
        for tomb in data.get("tombstones", []):
            result = catalog.apply_tombstone(
                engine.repo, tomb["id"], int(tomb["version"]), tomb.get("tag", "")
            )
            outcome[tomb["id"]] = result.value
            if result is catalog.Applied.APPLIED:
                engine.events.add("deleted", f"deleted on {peer}", tag=tomb.get("tag"))
                engine.locks.forget(tomb["id"])
            elif result is catalog.Applied.REFUSED:
                engine.events.add(
                    "conflict",
                    f"{peer} deleted it but it is in service here; kept",
                    tag=tomb.get("tag"),
                )

    def _log_applied(self, peer: str, rid: str, tag: str, result: catalog.Applied) -> None:
        if result is catalog.Applied.CONFLICT:
            self.engine.events.add(
                "conflict",
                f"{peer} sent a different definition at the same version; kept ours",
                tag=tag,
            )
        elif result is catalog.Applied.REFUSED:
            self.engine.events.add(
                "conflict",
                f"{peer} removed this server's instance, but it is in service here; kept",
                tag=tag,
            )
        elif result is catalog.Applied.APPLIED:
            log.info("[%s@%s] definition from %s applied", tag, self.engine.server, peer)

    # -- requests served -------------------------------------------------------------

    def _ready(self) -> None:
        if not self.ready:
            raise OpError("server", f"{self.engine.server} is still starting up", status=503)

    async def _up(self, peer: str, params: dict[str, Any]) -> dict[str, Any]:
        return await self._move_and_report(hierarchy_up, peer, params)

    async def _down(self, peer: str, params: dict[str, Any]) -> dict[str, Any]:
        withdraw = params.get("withdraw") is True

        async def down(engine: Engine, ids: set[str], why: str) -> dict[str, Any]:
            return await hierarchy_down(engine, ids, why, withdraw)

        return await self._move_and_report(down, peer, params)

    async def _move_and_report(
        self,
        action: Callable[[Engine, set[str], str], Awaitable[dict[str, Any]]],
        peer: str,
        params: dict[str, Any],
    ) -> dict[str, Any]:
        self._ready()
        try:
            why = str(params.get("why", f"asked by {peer}"))
            return await action(self.engine, self._known(params["ids"]), why)
        finally:
            # Now, not on the next loop turn: the asker must know our new states
            # (a hand-over withdrawn) before it reads our reply and acts on it.
            self._publish_states()

    async def _move(self, peer: str, params: dict[str, Any]) -> dict[str, Any]:
        self._ready()
        rid = str(params["id"])
        self._known([rid])
        return await move_here(self.engine, rid)

    def _known(self, ids: list[str]) -> set[str]:
        missing = [rid for rid in ids if self.engine.repo.resource(rid) is None]
        if missing:
            raise OpError(
                "tag",
                f"{self.engine.server} does not know {len(missing)} of these resources yet",
                status=409,
            )
        return set(ids)

    async def _extend_check(self, peer: str, params: dict[str, Any]) -> dict[str, Any]:
        return await check_extension(self.engine, list(params["items"]))

    async def _catalog_apply(self, peer: str, params: dict[str, Any]) -> dict[str, Any]:
        if "docs" not in params and "tombstones" not in params:
            raise OpError("catalog", "no definitions in the request")
        outcome = self.apply_docs(peer, params)
        refused = [rid for rid, result in outcome.items() if result in ("conflict", "refused")]
        if refused:
            raise OpError(
                "catalog",
                f"{self.engine.server} refused {len(refused)} definition(s); see its events",
                status=409,
            )
        return {"applied": outcome}

    async def _pinglist_seed(self, peer: str, params: dict[str, Any]) -> dict[str, Any]:
        subnet = str(params["subnet"])
        if not self.engine.repo.ping_list(subnet):
            self.engine.repo.set_ping_list(subnet, list(params["addresses"]))
        return {"addresses": self.engine.repo.ping_list(subnet)}

    async def _show(self, peer: str, params: dict[str, Any]) -> dict[str, Any]:
        return await views.show(self.engine, str(params["tag"]))

    async def _interfaces(self, peer: str, params: dict[str, Any]) -> dict[str, Any]:
        return await views.interfaces(self.engine, str(params["address"]), str(params["netmask"]))

    async def _setting(self, peer: str, params: dict[str, Any]) -> dict[str, Any]:
        return await admin.set_setting(
            self.engine, str(params["tag"]), str(params["key"]), str(params["value"])
        )

    async def _pinglist(self, peer: str, params: dict[str, Any]) -> dict[str, Any]:
        verb = params.get("verb")
        return await admin.pinglist(
            self.engine, str(params["tag"]), verb, list(params.get("addresses", []))
        )

    async def _extend(self, peer: str, params: dict[str, Any]) -> dict[str, Any]:
        options = {k: v for k, v in params.items() if k != "tag"}
        return await extend(self.engine, str(params["tag"]), **options)

    async def _used(self, peer: str, params: dict[str, Any]) -> dict[str, Any]:
        address = params.get("address")
        tag = params.get("tag")
        repo = self.engine.repo
        addresses = [str(a) for a in params.get("addresses", [])]
        own = [str(a) for a in params.get("own", [])]
        return {
            "address_used_by": used_by(self.engine, str(address)) if address else None,
            "tag_used": bool(tag) and repo.resource_by_tag(str(tag)) is not None,
            "tags_used": [str(t) for t in params.get("tags", []) if repo.resource_by_tag(str(t))],
            "addresses_used": {a: owner for a in addresses if (owner := used_by(self.engine, a))},
            # Addresses of this server's own, never to be VIPs (engine/addresses.py).
            "addresses_own": own_here(self.engine, await self._interfaces_here(), own)
            if own
            else {},
        }

    async def _interfaces_here(self) -> list[InterfaceInfo]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.engine.pool, self.engine.ip_kit().interfaces)

    async def _apply(self, peer: str, params: dict[str, Any]) -> dict[str, Any]:
        self._ready()
        return await apply(self.engine, params.get("document"), bool(params.get("dry_run")))

    async def _events(self, peer: str, params: dict[str, Any]) -> dict[str, Any]:
        return history.serve(self.engine, params)

    async def _create(self, peer: str, params: dict[str, Any]) -> dict[str, Any]:
        self._ready()
        return await create_on(self.engine, None, str(params["kind"]), dict(params["options"]))

    async def _addresses(self, peer: str, params: dict[str, Any]) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        own = await loop.run_in_executor(self.engine.pool, self.engine.ip_kit().own_addresses)
        return {"addresses": sorted(str(a) for a in own)}

    async def _reach(self, peer: str, params: dict[str, Any]) -> dict[str, Any]:
        return await reach_here(self.engine, str(params["id"]))
