"""Typed reads and writes of the resource tables (the only SQL outside db.py).

The database is the truth; the repository keeps an in-memory mirror of it so
that reads never touch SQLite (a failover pass over a thousand hierarchies
reads a dictionary, not a table). Every write goes to the database first; when
the outermost transaction ends, exactly the rows it touched are read back
into the mirror, whether it committed or rolled back, so the mirror never
holds what the database does not.

Methods that write must be called inside `db.transaction()` when several of
them make one change; each method alone is atomic.

When the disk refuses a write (store/health.py), a transaction that wrote only
states and settings is kept: the mirror takes what it meant, the rows are
marked unsaved and written by `flush_unsaved` (or by their next write) when the
disk takes writes again; until then the mirror, not the database, is the truth
for them. A transaction that wrote a definition is refused (StoreUnavailable).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ipkeeper.model.hierarchy import Hierarchy
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
    created_at: float = 0.0

    def instance(self, server: str) -> InstanceRecord | None:
        """The instance on `server`, if extended there."""
        for inst in self.instances:
            if inst.server == server:
                return inst
        return None

    def tag_on(self, server: str) -> str:
        """The tag used on `server` (or any tag, when not extended there)."""
        inst = self.instance(server)
        return inst.tag if inst else (self.instances[0].tag if self.instances else self.id)

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


@dataclass
class _Touched:
    """What the current transaction wrote, to be read back when it ends."""

    resources: set[str] = field(default_factory=set)
    states: set[str] = field(default_factory=set)
    dependencies: bool = False
    tombstones: set[str] = field(default_factory=set)
    ping_lists: set[str] = field(default_factory=set)
    settings: set[str] = field(default_factory=set)
    # What the writes of states and settings meant, to be kept in memory when the disk
    # refuses them (store/health.py): None for a state dropped.
    state_intents: dict[str, LocalState | None] = field(default_factory=dict)
    setting_intents: dict[str, str] = field(default_factory=dict)

    @property
    def definitions(self) -> bool:
        """True when anything but states and settings was written."""
        return bool(self.resources or self.dependencies or self.tombstones or self.ping_lists)

    def __bool__(self) -> bool:
        return bool(
            self.resources
            or self.states
            or self.dependencies
            or self.tombstones
            or self.ping_lists
            or self.settings
        )


class Repo:
    """Resources, instances, dependencies, local states, ping lists and settings."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.listeners: list[Callable[[str], None]] = []  # told the id of a changed local state
        # Told the ids of resources whose definition (or dependencies) changed.
        self.definition_listeners: list[Callable[[set[str]], None]] = []
        self._touched = _Touched()
        self._resources: dict[str, ResourceRecord] = {}
        self._by_tag: dict[str, str] = {}  # any server's tag -> resource id
        self._by_address: dict[str, str] = {}  # an IP resource's address -> resource id
        self._states: dict[str, LocalState] = {}
        self._deps: set[tuple[str, str]] = set()
        self._tombstones: dict[str, tuple[str, int]] = {}  # id -> (tag, version)
        self._ping_lists: dict[str, list[str]] = {}
        self._settings: dict[str, str] = {}
        self._graph: Hierarchy | None = None
        # States and settings held in memory because the disk refused them; written by
        # flush_unsaved() (or by the next write of the same row) once it takes writes.
        self._unsaved_states: set[str] = set()
        self._unsaved_settings: set[str] = set()
        self._load()
        db.after_transaction.append(self._read_back)
        db.keepers.append(self)

    # -- the mirror ------------------------------------------------------------

    def _load(self) -> None:
        """Read everything once, at start."""
        instances: dict[str, list[InstanceRecord]] = {}
        for row in self.db.query("SELECT * FROM instances ORDER BY priority"):
            instances.setdefault(row["resource_id"], []).append(_instance(row))
        for r in self.db.query("SELECT * FROM resources"):
            self._put_record(_record(r, instances.get(r["id"], [])))
        self._states = {
            r["resource_id"]: _state(r) for r in self.db.query("SELECT * FROM local_state")
        }
        self._deps = {
            (r["parent_id"], r["child_id"]) for r in self.db.query("SELECT * FROM dependencies")
        }
        self._tombstones = {
            r["resource_id"]: (r["tag"], int(r["version"]))
            for r in self.db.query("SELECT * FROM tombstones")
        }
        self._ping_lists = {
            r["subnet"]: list(json.loads(r["addresses"]))
            for r in self.db.query("SELECT * FROM ping_lists")
        }
        self._settings = {
            r["key"]: str(r["value"]) for r in self.db.query("SELECT * FROM settings")
        }

    def _put_record(self, rec: ResourceRecord) -> None:
        self._drop_record(rec.id)
        self._resources[rec.id] = rec
        for inst in rec.instances:
            self._by_tag[inst.tag] = rec.id
            address = inst.props.get("address") if rec.kind == "ip" else None
            if isinstance(address, str):
                self._by_address[address] = rec.id

    def _drop_record(self, resource_id: str) -> None:
        old = self._resources.pop(resource_id, None)
        if old is None:
            return
        for inst in old.instances:
            if self._by_tag.get(inst.tag) == resource_id:
                del self._by_tag[inst.tag]
            address = inst.props.get("address")
            if isinstance(address, str) and self._by_address.get(address) == resource_id:
                del self._by_address[address]

    # -- when the disk refuses a write (store/health.py) ------------------------------

    def can_keep(self) -> bool:
        """Keeper: states and settings can wait in memory; definitions cannot."""
        return not self._touched.definitions

    def keep(self) -> None:
        """Keeper: the failed transaction's states and settings become the mirror's, unsaved."""
        touched = self._touched
        for rid, state in touched.state_intents.items():
            if state is None:
                self._states.pop(rid, None)
            else:
                self._states[rid] = state
            self._unsaved_states.add(rid)
        for key, value in touched.setting_intents.items():
            self._settings[key] = value
            self._unsaved_settings.add(key)

    @property
    def unsaved(self) -> int:
        """States and settings held in memory, waiting for the disk."""
        return len(self._unsaved_states) + len(self._unsaved_settings)

    def flush_unsaved(self) -> int:
        """Write what the disk refused before (one transaction); how many rows it wrote.

        Never raises for the disk: refused again, everything stays kept as it was."""
        if not self.unsaved:
            return 0
        states, settings = set(self._unsaved_states), set(self._unsaved_settings)
        with self.db.transaction() as conn:
            for rid in sorted(states):
                st = self._states.get(rid)
                if st is None or rid not in self._resources:
                    conn.execute("DELETE FROM local_state WHERE resource_id = ?", (rid,))
                    self._touched.state_intents[rid] = None
                else:
                    conn.execute(
                        "INSERT OR REPLACE INTO local_state VALUES (?, ?, ?, ?, ?)",
                        (rid, st.state.value, st.pending, st.reason, st.since),
                    )
                    self._touched.state_intents[rid] = st
                self._touched.states.add(rid)
            for key in sorted(settings):
                conn.execute(
                    "INSERT OR REPLACE INTO settings VALUES (?, ?)", (key, self._settings[key])
                )
                self._touched.setting_intents[key] = self._settings[key]
                self._touched.settings.add(key)
        return len(states) + len(settings) - self.unsaved

    def _read_back(self, committed: bool) -> None:
        """Re-read what the transaction that just ended touched (see the module docstring)."""
        touched, self._touched = self._touched, _Touched()
        if not touched:
            return
        notify = set(touched.states)
        if committed:  # what the disk refused before is written now, where touched again
            self._unsaved_states -= touched.states
            self._unsaved_settings -= touched.settings
        else:  # the mirror, not the disk, has the last word on what is unsaved
            touched.states -= self._unsaved_states
            touched.settings -= self._unsaved_settings
        before = set(self._resources) if touched.resources else None
        for rid in touched.resources:
            rows = self.db.query("SELECT * FROM resources WHERE id = ?", (rid,))
            if rows:
                insts = self.db.query(
                    "SELECT * FROM instances WHERE resource_id = ? ORDER BY priority", (rid,)
                )
                self._put_record(_record(rows[0], [_instance(i) for i in insts]))
            else:
                self._drop_record(rid)
        # Deleting a resource deletes its dependencies too (ON DELETE CASCADE).
        added_or_removed = before is not None and before != self._resources.keys()
        if added_or_removed or touched.dependencies:
            self._deps = {
                (r["parent_id"], r["child_id"]) for r in self.db.query("SELECT * FROM dependencies")
            }
            self._graph = None
        self._reread(touched.states, "local_state", "resource_id", self._states, _state)
        self._reread(
            touched.tombstones,
            "tombstones",
            "resource_id",
            self._tombstones,
            lambda r: (r["tag"], int(r["version"])),
        )
        self._reread(
            touched.ping_lists,
            "ping_lists",
            "subnet",
            self._ping_lists,
            lambda r: list(json.loads(r["addresses"])),
        )
        self._reread(touched.settings, "settings", "key", self._settings, lambda r: str(r["value"]))
        changed = touched.resources | touched.tombstones
        if changed or touched.dependencies:
            for listener in self.definition_listeners:
                listener(set(changed))
        for rid in sorted(notify | (touched.resources - set(self._resources))):
            self.state_changed(rid)

    def _reread(
        self,
        keys: set[str],
        table: str,
        column: str,
        mirror: dict[str, Any],
        decode: Callable[[Any], Any],
    ) -> None:
        for key in keys:
            rows = self.db.query(f"SELECT * FROM {table} WHERE {column} = ?", (key,))
            if rows:
                mirror[key] = decode(rows[0])
            else:
                mirror.pop(key, None)

    def state_changed(self, resource_id: str) -> None:
        """Tell the listeners that what this server reports about `resource_id` changed."""
        for listener in self.listeners:
            listener(resource_id)

    # -- resources and instances ---------------------------------------------

    def resources(self) -> list[ResourceRecord]:
        """Every resource known on this server, with its instances (oldest first)."""
        return sorted(self._resources.values(), key=lambda r: (r.created_at, r.id))

    def resource_ids(self) -> set[str]:
        """The ids of every resource known here."""
        return set(self._resources)

    def resource(self, resource_id: str) -> ResourceRecord | None:
        """One resource by id."""
        return self._resources.get(resource_id)

    def resource_by_tag(self, tag: str) -> ResourceRecord | None:
        """The resource that any of whose instances is called `tag`."""
        rid = self._by_tag.get(tag)
        return self._resources.get(rid) if rid is not None else None

    def ip_resource_with(self, address: str) -> ResourceRecord | None:
        """The IP resource whose address is `address` (compared as addresses), if any (R5)."""
        rid = self._by_address.get(address)
        if rid is None:
            try:
                canonical = str(ipaddress.ip_address(address))
            except ValueError:
                return None
            rid = self._by_address.get(canonical)
        return self._resources.get(rid) if rid is not None else None

    def graph(self) -> Hierarchy:
        """The dependency graph over every resource known here (rebuilt only after a change)."""
        if self._graph is None:
            self._graph = Hierarchy(self._deps, self._resources)
        return self._graph

    def insert_resource(self, record: ResourceRecord) -> None:
        """Store a new resource with its instances."""
        now = time.time()
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO resources(id, kind, switchback, version, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (record.id, record.kind, record.switchback, record.version, now, now),
            )
            self._touched.resources.add(record.id)
            for inst in record.instances:
                self.put_instance(inst)

    def update_resource(self, resource_id: str, switchback: str, version: int) -> None:
        """Set a resource's switchback type and version (a definition received from a peer)."""
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE resources SET switchback = ?, version = ?, updated_at = ? WHERE id = ?",
                (switchback, version, time.time(), resource_id),
            )
            self._touched.resources.add(resource_id)

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
            self._touched.resources.add(inst.resource_id)

    def remove_instance(self, resource_id: str, server: str) -> None:
        """Forget one server's instance."""
        with self.db.transaction() as conn:
            conn.execute(
                "DELETE FROM instances WHERE resource_id = ? AND server = ?", (resource_id, server)
            )
            self._touched.resources.add(resource_id)

    def clear_instances(self, resource_id: str) -> None:
        """Forget every server's instance of a resource (before storing a new set)."""
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM instances WHERE resource_id = ?", (resource_id,))
            self._touched.resources.add(resource_id)

    def set_switchback(self, resource_id: str, switchback: str) -> None:
        """Change the switchback type."""
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE resources SET switchback = ? WHERE id = ?", (switchback, resource_id)
            )
            self._touched.resources.add(resource_id)

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
            self._touched.resources.add(resource_id)
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
            self._touched.resources.add(resource_id)
            self._touched.states.add(resource_id)

    def add_tombstone(self, resource_id: str, tag: str, version: int) -> None:
        """Remember that `resource_id` was deleted at `version`."""
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO tombstones VALUES (?, ?, ?, ?) ON CONFLICT(resource_id) DO UPDATE "
                "SET version = MAX(version, excluded.version)",
                (resource_id, tag, version, time.time()),
            )
            self._touched.tombstones.add(resource_id)

    def tombstone(self, resource_id: str) -> int | None:
        """The version at which `resource_id` was deleted, if it was."""
        found = self._tombstones.get(resource_id)
        return found[1] if found else None

    def tombstones(self) -> dict[str, tuple[str, int]]:
        """Every deletion remembered: resource id -> (tag, version)."""
        return dict(self._tombstones)

    # -- dependencies --------------------------------------------------------

    def dependencies(self) -> list[tuple[str, str]]:
        """Every (parent id, child id) pair."""
        return sorted(self._deps)

    def has_dependency(self, parent_id: str, child_id: str) -> bool:
        """True when `parent_id` needs `child_id`."""
        return (parent_id, child_id) in self._deps

    def add_dependency(self, parent_id: str, child_id: str) -> None:
        """Record that `parent_id` needs `child_id`."""
        with self.db.transaction() as conn:
            conn.execute("INSERT OR IGNORE INTO dependencies VALUES (?, ?)", (parent_id, child_id))
            self._touched.dependencies = True

    def remove_dependency(self, parent_id: str, child_id: str) -> None:
        """Forget a dependency."""
        with self.db.transaction() as conn:
            conn.execute(
                "DELETE FROM dependencies WHERE parent_id = ? AND child_id = ?",
                (parent_id, child_id),
            )
            self._touched.dependencies = True

    def set_children(self, parent_id: str, children: list[str]) -> None:
        """Make `children` exactly what `parent_id` depends on (those known here)."""
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM dependencies WHERE parent_id = ?", (parent_id,))
            for child in children:
                if child in self._resources or child in self._touched.resources:
                    conn.execute(
                        "INSERT OR IGNORE INTO dependencies VALUES (?, ?)", (parent_id, child)
                    )
            self._touched.dependencies = True

    # -- this server's states --------------------------------------------------

    def local_states(self) -> dict[str, LocalState]:
        """This server's state of every resource extended here, by resource id."""
        return dict(self._states)

    def local_state(self, resource_id: str) -> LocalState | None:
        """This server's state of one resource."""
        return self._states.get(resource_id)

    def set_state(
        self, resource_id: str, state: ResourceState, reason: str, pending: str | None = None
    ) -> None:
        """Record this server's state (and the action in flight, if any) for a resource.

        Read it back with `local_state` (inside an outer transaction, the
        mirror shows it once that transaction has ended)."""
        if pending is not None and pending not in PENDING:
            raise ValueError(f"pending: {pending!r}")
        now = time.time()
        before = self._intended(resource_id)
        since = before.since if before is not None and before.state is state else now
        self._touched.state_intents[resource_id] = LocalState(
            resource_id, state, pending, reason, since
        )
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO local_state(resource_id, state, pending, reason, since) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(resource_id) DO UPDATE SET state = excluded.state, pending = excluded.pending, "
                "reason = excluded.reason, since = CASE WHEN local_state.state = excluded.state "
                "THEN local_state.since ELSE excluded.since END",
                (resource_id, state.value, pending, reason, now),
            )
            self._touched.states.add(resource_id)

    def _intended(self, resource_id: str) -> LocalState | None:
        """A state as the current transaction leaves it so far (else as the mirror has it)."""
        intents = self._touched.state_intents
        return intents[resource_id] if resource_id in intents else self._states.get(resource_id)

    def set_pending(self, resource_id: str, pending: str | None) -> None:
        """Mark (or clear) the action in flight for a resource, keeping its state."""
        before = self._intended(resource_id)
        if before is not None:
            self._touched.state_intents[resource_id] = dataclasses.replace(before, pending=pending)
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE local_state SET pending = ? WHERE resource_id = ?", (pending, resource_id)
            )
            self._touched.states.add(resource_id)

    def drop_state(self, resource_id: str) -> None:
        """Forget this server's state of a resource (after unextend)."""
        self._touched.state_intents[resource_id] = None
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM local_state WHERE resource_id = ?", (resource_id,))
            self._touched.states.add(resource_id)

    # -- ping lists and settings -------------------------------------------------

    def ping_list(self, subnet: str) -> list[str]:
        """This server's ping list for `subnet` (R13), possibly empty."""
        return list(self._ping_lists.get(subnet, ()))

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
            self._touched.ping_lists.add(subnet)

    def setting(self, key: str, default: str | None = None) -> str | None:
        """A stored setting."""
        return self._settings.get(key, default)

    def set_setting(self, key: str, value: str) -> None:
        """Store a setting."""
        self._touched.setting_intents[key] = value
        with self.db.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO settings VALUES (?, ?)", (key, value))
            self._touched.settings.add(key)


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


def _record(row: Any, instances: list[InstanceRecord]) -> ResourceRecord:
    return ResourceRecord(
        row["id"],
        row["kind"],
        row["switchback"],
        row["version"],
        tuple(instances),
        float(row["created_at"]),
    )


def _instance(row: Any) -> InstanceRecord:
    return InstanceRecord(
        row["resource_id"], row["server"], row["tag"], row["priority"], json.loads(row["props"])
    )


def _state(row: Any) -> LocalState:
    return LocalState(
        row["resource_id"], ResourceState(row["state"]), row["pending"], row["reason"], row["since"]
    )
