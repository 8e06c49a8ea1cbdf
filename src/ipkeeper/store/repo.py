"""Typed reads and writes of the resource tables (the only SQL outside db.py).

Methods that write must be called inside `db.transaction()` when several of
them make one change; each method alone is atomic.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ipkeeper.model.states import ResourceState
from ipkeeper.store.db import Database

log = logging.getLogger("ipkeeper.store")

PENDING = ("create", "restore", "remove", "delete")


@dataclass(frozen=True)
class InstanceRecord:
    """A resource's definition on one server: its tag, priority and kit properties there."""

    resource_id: str
    server: str
    tag: str
    priority: int
    props: dict[str, Any]


@dataclass(frozen=True)
class ResourceRecord:
    """A resource with its instances on every server it is extended to."""

    id: str
    kind: str
    switchback: str
    version: int
    instances: tuple[InstanceRecord, ...] = field(default=())

    def instance(self, server: str) -> InstanceRecord | None:
        """The instance on `server`, if extended there."""
        for inst in self.instances:
            if inst.server == server:
                return inst
        return None

    def tag_on(self, server: str) -> str:
        """The tag used on `server` (or any tag, when not extended there)."""
        inst = self.instance(server)
        return inst.tag if inst else self.instances[0].tag

    @property
    def servers(self) -> list[str]:
        """Servers holding an instance, best priority first."""
        return [i.server for i in sorted(self.instances, key=lambda i: i.priority)]


@dataclass(frozen=True)
class LocalState:
    """This server's state of one resource, and the action in flight if any."""

    resource_id: str
    state: ResourceState
    pending: str | None
    reason: str
    since: float


class Repo:
    """Resources, instances, dependencies, local states, ping lists and settings."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.listeners: list[Callable[[str], None]] = []  # told the id of a changed local state

    def state_changed(self, resource_id: str) -> None:
        """Tell the listeners that what this server reports about `resource_id` changed."""
        for listener in self.listeners:
            listener(resource_id)

    # -- resources and instances ---------------------------------------------

    def resources(self) -> list[ResourceRecord]:
        """Every resource known on this server, with its instances."""
        instances: dict[str, list[InstanceRecord]] = {}
        for row in self.db.query("SELECT * FROM instances ORDER BY priority"):
            instances.setdefault(row["resource_id"], []).append(_instance(row))
        return [
            ResourceRecord(
                r["id"], r["kind"], r["switchback"], r["version"], tuple(instances.get(r["id"], ()))
            )
            for r in self.db.query("SELECT * FROM resources ORDER BY created_at, id")
        ]

    def resource(self, resource_id: str) -> ResourceRecord | None:
        """One resource by id."""
        rows = self.db.query("SELECT * FROM resources WHERE id = ?", (resource_id,))
        if not rows:
            return None
        r = rows[0]
        insts = self.db.query(
            "SELECT * FROM instances WHERE resource_id = ? ORDER BY priority", (resource_id,)
        )
        return ResourceRecord(
            r["id"], r["kind"], r["switchback"], r["version"], tuple(_instance(i) for i in insts)
        )

    def resource_by_tag(self, tag: str) -> ResourceRecord | None:
        """The resource that any of whose instances is called `tag`."""
        rows = self.db.query("SELECT resource_id FROM instances WHERE tag = ? LIMIT 1", (tag,))
        return self.resource(rows[0]["resource_id"]) if rows else None

    def insert_resource(self, record: ResourceRecord) -> None:
        """Store a new resource with its instances."""
        now = time.time()
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO resources(id, kind, switchback, version, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (record.id, record.kind, record.switchback, record.version, now, now),
            )
            for inst in record.instances:
                self.put_instance(inst)

    def put_instance(self, inst: InstanceRecord) -> None:
        """Insert or replace one server's instance."""
        with self.db.transaction() as conn:
            # Upsert on (resource, server) only: a tag or priority clash is an error.
            conn.execute(
                "INSERT INTO instances(resource_id, server, tag, priority, props) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(resource_id, server) DO UPDATE SET tag = excluded.tag, "
                "priority = excluded.priority, props = excluded.props",
                (
                    inst.resource_id,
                    inst.server,
                    inst.tag,
                    inst.priority,
                    json.dumps(inst.props, sort_keys=True),
                ),
            )

    def remove_instance(self, resource_id: str, server: str) -> None:
        """Forget one server's instance."""
        with self.db.transaction() as conn:
            conn.execute(
                "DELETE FROM instances WHERE resource_id = ? AND server = ?", (resource_id, server)
            )

    def set_switchback(self, resource_id: str, switchback: str) -> None:
        """Change the switchback type."""
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE resources SET switchback = ? WHERE id = ?", (switchback, resource_id)
            )

    def bump_version(self, resource_id: str) -> int:
        """Count one more change to a resource's cluster-wide definition; returns the new version."""
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE resources SET version = version + 1, updated_at = ? WHERE id = ?",
                (time.time(), resource_id),
            )
            row = conn.execute(
                "SELECT version FROM resources WHERE id = ?", (resource_id,)
            ).fetchone()
        return int(row[0]) if row else 0

    def delete_resource(self, resource_id: str, version: int | None = None) -> None:
        """Delete a resource from this database, leaving a tombstone (at `version`, or one
        past the resource's own) so that peers learn of the deletion."""
        record = self.resource(resource_id)
        if record is None:
            return
        with self.db.transaction() as conn:
            self.add_tombstone(resource_id, record.tag_on(""), version or record.version + 1)
            conn.execute("DELETE FROM resources WHERE id = ?", (resource_id,))
        self.state_changed(resource_id)

    def add_tombstone(self, resource_id: str, tag: str, version: int) -> None:
        """Remember that `resource_id` was deleted at `version`."""
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO tombstones VALUES (?, ?, ?, ?) ON CONFLICT(resource_id) DO UPDATE "
                "SET version = MAX(version, excluded.version)",
                (resource_id, tag, version, time.time()),
            )

    def tombstone(self, resource_id: str) -> int | None:
        """The version at which `resource_id` was deleted, if it was."""
        rows = self.db.query("SELECT version FROM tombstones WHERE resource_id = ?", (resource_id,))
        return int(rows[0]["version"]) if rows else None

    # -- dependencies --------------------------------------------------------

    def dependencies(self) -> list[tuple[str, str]]:
        """Every (parent id, child id) pair."""
        return [
            (r["parent_id"], r["child_id"]) for r in self.db.query("SELECT * FROM dependencies")
        ]

    def add_dependency(self, parent_id: str, child_id: str) -> None:
        """Record that `parent_id` needs `child_id`."""
        with self.db.transaction() as conn:
            conn.execute("INSERT OR IGNORE INTO dependencies VALUES (?, ?)", (parent_id, child_id))

    def remove_dependency(self, parent_id: str, child_id: str) -> None:
        """Forget a dependency."""
        with self.db.transaction() as conn:
            conn.execute(
                "DELETE FROM dependencies WHERE parent_id = ? AND child_id = ?",
                (parent_id, child_id),
            )

    # -- this server's states --------------------------------------------------

    def local_states(self) -> dict[str, LocalState]:
        """This server's state of every resource extended here, by resource id."""
        return {r["resource_id"]: _state(r) for r in self.db.query("SELECT * FROM local_state")}

    def local_state(self, resource_id: str) -> LocalState | None:
        """This server's state of one resource."""
        rows = self.db.query("SELECT * FROM local_state WHERE resource_id = ?", (resource_id,))
        return _state(rows[0]) if rows else None

    def set_state(
        self, resource_id: str, state: ResourceState, reason: str, pending: str | None = None
    ) -> LocalState:
        """Record this server's state (and the action in flight, if any) for a resource."""
        if pending is not None and pending not in PENDING:
            raise ValueError(f"pending: {pending!r}")
        now = time.time()
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO local_state(resource_id, state, pending, reason, since) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(resource_id) DO UPDATE SET state = excluded.state, pending = excluded.pending, "
                "reason = excluded.reason, since = CASE WHEN local_state.state = excluded.state "
                "THEN local_state.since ELSE excluded.since END",
                (resource_id, state.value, pending, reason, now),
            )
        current = self.local_state(resource_id)
        assert current is not None
        self.state_changed(resource_id)
        return current

    def set_pending(self, resource_id: str, pending: str | None) -> None:
        """Mark (or clear) the action in flight for a resource, keeping its state."""
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE local_state SET pending = ? WHERE resource_id = ?", (pending, resource_id)
            )

    def drop_state(self, resource_id: str) -> None:
        """Forget this server's state of a resource (after unextend)."""
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM local_state WHERE resource_id = ?", (resource_id,))
        self.state_changed(resource_id)

    # -- ping lists and settings -------------------------------------------------

    def ping_list(self, subnet: str) -> list[str]:
        """This server's ping list for `subnet` (R13), possibly empty."""
        rows = self.db.query("SELECT addresses FROM ping_lists WHERE subnet = ?", (subnet,))
        return list(json.loads(rows[0]["addresses"])) if rows else []

    def set_ping_list(self, subnet: str, addresses: list[str]) -> None:
        """Replace this server's ping list for `subnet`; an empty list removes it."""
        with self.db.transaction() as conn:
            if addresses:
                conn.execute(
                    "INSERT OR REPLACE INTO ping_lists VALUES (?, ?)",
                    (subnet, json.dumps(addresses)),
                )
            else:
                conn.execute("DELETE FROM ping_lists WHERE subnet = ?", (subnet,))

    def setting(self, key: str, default: str | None = None) -> str | None:
        """A stored setting."""
        rows = self.db.query("SELECT value FROM settings WHERE key = ?", (key,))
        return str(rows[0]["value"]) if rows else default

    def set_setting(self, key: str, value: str) -> None:
        """Store a setting."""
        with self.db.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO settings VALUES (?, ?)", (key, value))


class StoredSet:
    """A set of resource ids kept in a setting, so that it survives a restart.

    Written only when it changes (callers may discard ids on every pass); a
    change is a change of what this server reports, so listeners are told.
    """

    def __init__(self, repo: Repo, key: str) -> None:
        self.repo = repo
        self.key = key
        self._ids = _id_set(repo.setting(key, "[]"))

    def __contains__(self, resource_id: object) -> bool:
        return resource_id in self._ids

    def add(self, ids: set[str] | frozenset[str]) -> None:
        """Add `ids` (committed before returning)."""
        if not set(ids) <= self._ids:
            self._save(self._ids | set(ids))

    def discard(self, ids: set[str] | frozenset[str]) -> None:
        """Remove `ids` (committed before returning)."""
        if self._ids & set(ids):
            self._save(self._ids - set(ids))

    def _save(self, ids: set[str]) -> None:
        self.repo.set_setting(self.key, json.dumps(sorted(ids)))
        changed, self._ids = self._ids ^ ids, ids
        for rid in sorted(changed):
            self.repo.state_changed(rid)


def _id_set(text: str | None) -> set[str]:
    """A stored JSON list of ids; anything else is reported and read as empty."""
    try:
        value = json.loads(text or "[]")
    except ValueError:
        value = None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        log.warning("stored setting is not a list of resource ids, ignored: %.80r", text)
        return set()
    return set(value)


def _instance(row: Any) -> InstanceRecord:
    return InstanceRecord(
        row["resource_id"], row["server"], row["tag"], row["priority"], json.loads(row["props"])
    )


def _state(row: Any) -> LocalState:
    return LocalState(
        row["resource_id"], ResourceState(row["state"]), row["pending"], row["reason"], row["since"]
    )
