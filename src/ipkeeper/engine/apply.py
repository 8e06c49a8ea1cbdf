"""`ipkeeper apply FILE`: hundreds of resources declared at once, applied as a difference.

A document lists resources (IP, application, group), the servers each is
extended to with their priorities, and what each depends on. Applying it:

1. reads every entry (defaults, `range` shorthands, `children` patterns);
2. compares it with the cluster: what is new is created, what is missing
   an extension or a dependency gets it, a changed switchback is set;
   everything else is left as it is (resources not in the document are
   never touched), so applying the same file twice changes nothing;
3. checks everything before doing anything: an entry that cannot be applied
   is refused with its tag and field named, and nothing at all is applied;
4. does it in batches: one transaction for the new definitions, one batched
   bring-up, one extension request per target server.

New resources come up on the server with the best priority in their
`servers` (their template), which must be this server: the document is sent
there when it is another one. A bring-up that fails after all checks passed
(someone took an address meanwhile) is undone with everything this apply
created, and the error names the entry.
"""

from __future__ import annotations

import asyncio
import fnmatch
import ipaddress
import uuid
from dataclasses import dataclass, field
from typing import Any

from ipkeeper.engine.addresses import refuse_own, refuse_peers_own
from ipkeeper.engine.core import Engine
from ipkeeper.engine.create import SWITCHBACK, finish_delete_created
from ipkeeper.engine.errors import OpError
from ipkeeper.engine.extend import extend_items
from ipkeeper.engine.guard import refuse_applied
from ipkeeper.kits.app.kit import validate_app
from ipkeeper.kits.ip.interfaces import InterfaceInfo, choose
from ipkeeper.kits.ip.params import (
    IPSpec,
    ParamError,
    check_tag,
    check_vip,
    default_tag,
    interface_of,
    parse_address,
    parse_netmask,
)
from ipkeeper.model.hierarchy import Hierarchy
from ipkeeper.model.states import ResourceState
from ipkeeper.store.repo import InstanceRecord, ResourceRecord

KINDS = ("ip", "app", "group")
MAX_ENTRIES = 10_000
APP_FIELDS = ("restore", "remove", "check", "recover", "timeout")


@dataclass
class Entry:
    """One resource of the document, read and checked."""

    label: str  # how errors name it: its tag, or its position
    kind: str
    tag: str
    servers: dict[str, int]
    switchback: str
    children: list[str]
    raw: dict[str, Any]
    props: dict[str, Any] = field(default_factory=dict)
    existing: ResourceRecord | None = None

    @property
    def template(self) -> str:
        """The server with the best priority: where a new resource comes up."""
        return min(self.servers, key=lambda s: (self.servers[s], s))


@dataclass
class Plan:
    """What applying the document changes."""

    create: list[Entry] = field(default_factory=list)
    extend: dict[str, list[tuple[str, str, int]]] = field(default_factory=dict)  # server: tags
    depend: list[tuple[str, str]] = field(default_factory=list)  # (parent tag, child tag)
    switchback: list[tuple[str, str]] = field(default_factory=list)  # (tag, new value)
    unchanged: int = 0
    warnings: list[str] = field(default_factory=list)

    def summary(self, dry_run: bool) -> dict[str, Any]:
        """The reply of the API and the CLI."""
        return {
            "dry_run": dry_run,
            "create": [e.tag for e in self.create],
            "extend": {s: [t for t, _, _ in items] for s, items in sorted(self.extend.items())},
            "depend": [list(edge) for edge in self.depend],
            "switchback": [list(change) for change in self.switchback],
            "unchanged": self.unchanged,
            "warnings": self.warnings,
            "changes": len(self.create)
            + sum(len(v) for v in self.extend.values())
            + len(self.depend)
            + len(self.switchback),
        }


def _refuse(label: str, fieldname: str, reason: str) -> OpError:
    return OpError(f"{label}.{fieldname}", reason)


# -- reading the document -------------------------------------------------------------


def read_document(doc: Any) -> list[Entry]:
    """Every entry of a document (pure): defaults applied, ranges expanded."""
    if not isinstance(doc, dict):
        raise OpError("document", "must be a table of [defaults] and [[ip]], [[app]], [[group]]")
    unknown = sorted(set(doc) - {"defaults", *KINDS})
    if unknown:
        raise OpError(
            "document", f"unknown section {unknown[0]!r} (known: defaults, ip, app, group)"
        )
    defaults = doc.get("defaults", {})
    if not isinstance(defaults, dict):
        raise OpError("defaults", "must be a table")
    entries: list[Entry] = []
    for kind in KINDS:
        items = doc.get(kind, [])
        if not isinstance(items, list):
            raise OpError(kind, "must be a list of tables ([[" + kind + "]])")
        for position, raw in enumerate(items, 1):
            if not isinstance(raw, dict):
                raise OpError(f"{kind}[{position}]", "must be a table")
            merged = {
                **{k: v for k, v in defaults.items() if k != "netmask" or kind == "ip"},
                **raw,
            }
            entries.extend(_expand(kind, position, merged))
            if len(entries) > MAX_ENTRIES:
                raise OpError("document", f"more than {MAX_ENTRIES} resources")
    return entries


def _expand(kind: str, position: int, raw: dict[str, Any]) -> list[Entry]:
    where = f"{kind}[{position}]"
    if kind == "ip" and "range" in raw:
        if "address" in raw or "tag" in raw:
            raise _refuse(where, "range", "cannot be combined with address or tag")
        first, last = _range(where, raw["range"])
        return [
            _entry(kind, f"{where}/{address}", {**raw, "address": str(address)})
            for address in _addresses(first, last)
        ]
    return [_entry(kind, where, raw)]


def _range(where: str, text: Any) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]:
    try:
        first_text, last_text = str(text).split("-")
        first, last = (
            ipaddress.ip_address(first_text.strip()),
            ipaddress.ip_address(last_text.strip()),
        )
    except ValueError:
        raise _refuse(where, "range", f"{text!r} is not FIRST-LAST (two addresses)") from None
    if first.version != last.version or int(last) < int(first):
        raise _refuse(where, "range", f"{text!r}: the last address must follow the first")
    if int(last) - int(first) >= MAX_ENTRIES:
        raise _refuse(where, "range", f"{text!r} holds more than {MAX_ENTRIES} addresses")
    return first, last


def _addresses(first: Any, last: Any) -> list[Any]:
    return [ipaddress.ip_address(n) for n in range(int(first), int(last) + 1)]


def _entry(kind: str, where: str, raw: dict[str, Any]) -> Entry:
    known = {"tag", "servers", "switchback", "children", "range", "interface"}
    known |= {"address", "netmask"} if kind == "ip" else set()
    known |= set(APP_FIELDS) if kind == "app" else set()
    extra = sorted(set(raw) - known)
    if extra:
        raise _refuse(where, extra[0], f"is not a field of {kind} resources")
    if kind == "ip":
        if not raw.get("address"):
            raise _refuse(where, "address", "is required")
        tag = str(raw.get("tag") or default_tag(str(raw["address"])))
    else:
        if not raw.get("tag"):
            raise _refuse(where, "tag", "is required")
        tag = str(raw["tag"])
    label = tag
    try:
        check_tag(tag)
    except ParamError as exc:
        raise _refuse(where, "tag", exc.reason) from None
    servers = raw.get("servers")
    if not isinstance(servers, dict) or not servers:
        raise _refuse(label, "servers", "is required: a table of server = priority")
    for name, priority in servers.items():
        if not isinstance(priority, int) or isinstance(priority, bool) or not 1 <= priority <= 999:
            raise _refuse(label, "servers", f"{name}: the priority must be a whole number 1..999")
    if len(set(servers.values())) != len(servers):
        raise _refuse(label, "servers", "two servers cannot have the same priority")
    switchback = str(raw.get("switchback", "intelligent"))
    if switchback not in SWITCHBACK:
        raise _refuse(label, "switchback", f"{switchback!r} must be intelligent or automatic")
    children = raw.get("children", [])
    if not isinstance(children, list) or not all(isinstance(c, str) for c in children):
        raise _refuse(label, "children", "must be a list of tags (patterns like ip-198.18.4.* too)")
    return Entry(label, kind, tag, dict(servers), switchback, list(children), raw)


# -- comparing with the cluster and checking -------------------------------------------


async def plan_apply(engine: Engine, entries: list[Entry]) -> tuple[Plan, dict[str, set[str]]]:
    """What applying `entries` would change, every entry checked (OpError for the first
    that cannot be applied); also the children of every entry, by tag."""
    tags = [e.tag for e in entries]
    duplicate = (
        next((t for t in tags if tags.count(t) > 1), None) if len(set(tags)) < len(tags) else None
    )
    if duplicate:
        raise _refuse(duplicate, "tag", "appears twice in the document")
    plan = Plan()
    known = {s for s in engine.table.peers} | {engine.server}
    for entry in entries:
        for server in entry.servers:
            if server not in known:
                raise _refuse(entry.label, "servers", f"{server} is not a server of this cluster")
        entry.existing = engine.repo.resource_by_tag(entry.tag)
        if entry.existing is None:
            plan.create.append(entry)
        else:
            _compare(engine, entry, plan)
    await _check_new(engine, plan.create)
    children = _children(engine, entries)
    _dependencies(engine, entries, children, plan)
    for entry in plan.create:
        for server, priority in entry.servers.items():
            if server != entry.template:
                plan.extend.setdefault(server, []).append((entry.tag, entry.kind, priority))
    plan.warnings = refuse_applied(
        engine,
        {e.tag: (e.kind, set(e.servers)) for e in plan.create},
        {server: [tag for tag, _, _ in items] for server, items in plan.extend.items()},
        plan.depend,
    )
    return plan, children


def _compare(engine: Engine, entry: Entry, plan: Plan) -> None:
    rec = entry.existing
    assert rec is not None
    if rec.kind != entry.kind:
        raise _refuse(entry.label, "type", f"{entry.tag} exists as a {rec.kind} resource")
    if entry.kind == "ip":
        _same_address(entry, IPSpec.from_props(rec.instances[0].props))
    have = {i.server: i.priority for i in rec.instances}
    changed = False
    for server, priority in entry.servers.items():
        if server in have and have[server] != priority:
            raise _refuse(
                entry.label,
                "servers",
                f"{server} has priority {have[server]} for {entry.tag}; priorities cannot be changed by apply",
            )
        if server not in have:
            if priority in have.values():
                raise _refuse(
                    entry.label, "servers", f"priority {priority} is already used for {entry.tag}"
                )
            plan.extend.setdefault(server, []).append((entry.tag, entry.kind, priority))
            changed = True
    if rec.switchback != entry.switchback and "switchback" in entry.raw:
        plan.switchback.append((entry.tag, entry.switchback))
        changed = True
    if not changed:
        plan.unchanged += 1


def _same_address(entry: Entry, stored: IPSpec) -> None:
    """An existing IP resource's address and netmask cannot change (delete it instead)."""
    try:
        wanted = ipaddress.ip_address(str(entry.raw["address"]).strip())
    except ValueError:
        wanted = None
    if wanted is not None and wanted != stored.address:
        raise _refuse(
            entry.label, "address", f"{entry.tag} has {stored.address}: delete it to change it"
        )
    if "netmask" in entry.raw:
        try:
            prefix = parse_netmask(str(entry.raw["netmask"]), stored.address.version)
        except ParamError as exc:
            raise _refuse(entry.label, "netmask", exc.reason) from None
        if prefix != stored.prefix:
            raise _refuse(
                entry.label, "netmask", f"{entry.tag} has /{stored.prefix}: delete it to change it"
            )


async def _check_new(engine: Engine, entries: list[Entry]) -> None:
    """Every new resource, as create would check it (R1-R6), but all at once."""
    if not entries:
        return
    if engine.witness:
        raise OpError("server", f"{engine.server} is a witness: it holds no resources")
    loop = asyncio.get_running_loop()
    interfaces: list[InterfaceInfo] = await loop.run_in_executor(
        engine.pool, engine.ip_kit().interfaces
    )
    addresses: dict[str, str] = {}
    for entry in entries:
        if entry.template != engine.server:
            raise _refuse(
                entry.label,
                "servers",
                f"its best priority is {entry.template}; new resources come up there",
            )
        if entry.kind == "ip":
            entry.props = await _ip_props(engine, entry, interfaces)
            address = str(entry.props["address"])
            if address in addresses:
                raise _refuse(
                    entry.label, "address", f"{address} is also the address of {addresses[address]}"
                )
            addresses[address] = entry.tag
            owner = engine.repo.ip_resource_with(address)
            if owner is not None:
                raise _refuse(
                    entry.label,
                    "address",
                    f"{address} is already used by {owner.tag_on(engine.server)} (R5)",
                )
            try:
                refuse_own(engine, ipaddress.ip_address(address), interfaces)
            except OpError as exc:
                raise _refuse(entry.label, exc.field, exc.reason) from None
        elif entry.kind == "app":
            commands = {k: entry.raw[k] for k in APP_FIELDS if k in entry.raw}
            try:
                entry.props = await loop.run_in_executor(engine.pool, validate_app, commands)
            except ValueError as exc:
                name, _, reason = str(exc).partition(": ")
                raise _refuse(entry.label, name, reason) from None
    await _unused_in_cluster(engine, entries, addresses)
    await _unique(engine, entries)


async def _ip_props(
    engine: Engine, entry: Entry, interfaces: list[InterfaceInfo]
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    try:
        address = await loop.run_in_executor(engine.pool, parse_address, str(entry.raw["address"]))
    except ParamError as exc:
        raise _refuse(entry.label, "address", exc.reason) from None
    if "netmask" not in entry.raw:
        raise _refuse(entry.label, "netmask", "is required (here or in [defaults])")
    try:
        prefix = parse_netmask(str(entry.raw["netmask"]), address.version)
        check_vip(interface_of(address, prefix), entry.raw.get("interface") is not None)
        chosen = choose(interface_of(address, prefix), interfaces, entry.raw.get("interface"))
    except ParamError as exc:
        raise _refuse(entry.label, exc.field, exc.reason) from None
    return IPSpec(address, prefix, chosen).to_props()


async def _unused_in_cluster(
    engine: Engine, entries: list[Entry], addresses: dict[str, str]
) -> None:
    """R4, R5 across the cluster: one question to every live peer for all the entries."""
    for server in sorted(engine.peers.alive() - {engine.server}):
        answer = await engine.peers.request(
            server,
            "used",
            {
                "tags": [e.tag for e in entries],
                "addresses": sorted(addresses),
                "own": sorted(addresses),
            },
            timeout=30,
        )
        for tag in answer.get("tags_used", []):
            raise _refuse(tag, "tag", f"{tag} already exists on {server}")
        for address, owner in sorted(answer.get("addresses_used", {}).items()):
            raise _refuse(
                addresses.get(address, address),
                "address",
                f"{address} is already used by {owner} on {server} (R5)",
            )
        for address in sorted(addresses):
            try:
                refuse_peers_own(server, answer, [address])
            except OpError as exc:
                raise _refuse(addresses[address], exc.field, exc.reason) from None


async def _unique(engine: Engine, entries: list[Entry]) -> None:
    """R6 before anything is stored: no new address may answer anywhere on the network."""
    specs = [(e, IPSpec.from_props(e.props)) for e in entries if e.kind == "ip"]
    if not specs or engine.tunables.get("NOIPUNIQUE"):
        return
    kit = engine.ip_kit()
    loop = asyncio.get_running_loop()
    free = [(e, s) for e, s in specs if not kit.has_address(s)]
    holders = await loop.run_in_executor(engine.pool, kit.holders, [s for _, s in free])
    for entry, spec in free:
        if spec.address in holders:
            raise _refuse(
                entry.label,
                "address",
                f"{spec.address} is already in use on the network (answered by {holders[spec.address]})",
            )


def _children(engine: Engine, entries: list[Entry]) -> dict[str, set[str]]:
    """Each entry's children (patterns matched against the document's and the cluster's tags)."""
    every = {e.tag for e in entries} | {r.tag_on(engine.server) for r in engine.repo.resources()}
    result: dict[str, set[str]] = {}
    for entry in entries:
        found: set[str] = set()
        for pattern in entry.children:
            matched = (
                {t for t in every if fnmatch.fnmatchcase(t, pattern)}
                if any(c in pattern for c in "*?[")
                else ({pattern} & every)
            )
            if not matched:
                raise _refuse(entry.label, "children", f"{pattern!r} names no resource")
            found |= matched
        found.discard(entry.tag)
        result[entry.tag] = found
    return result


def _dependencies(
    engine: Engine, entries: list[Entry], children: dict[str, set[str]], plan: Plan
) -> None:
    """New dependencies (R21): no cycle; a child extended wherever its parent is."""
    repo = engine.repo
    by_tag = {e.tag: e for e in entries}

    def rid(tag: str) -> str:
        rec = repo.resource_by_tag(tag)
        return rec.id if rec is not None else f"new:{tag}"

    edges = set(repo.dependencies())
    for parent, kids in sorted(children.items()):
        for child in sorted(kids):
            edge = (rid(parent), rid(child))
            if edge in edges:
                continue
            parent_servers = set(by_tag[parent].servers)
            child_entry = by_tag.get(child)
            child_rec = repo.resource_by_tag(child)
            child_servers = (
                set(child_entry.servers)
                if child_entry
                else {i.server for i in child_rec.instances}
                if child_rec
                else set()
            )
            missing = parent_servers - child_servers
            if missing:
                raise _refuse(
                    parent,
                    "children",
                    f"{child} is not extended to {', '.join(sorted(missing))}, where {parent} is",
                )
            if by_tag[parent].existing is not None or (
                child_rec is not None and child_entry is None
            ):
                _states_agree(engine, parent, child)
            plan.depend.append((parent, child))
            edges.add(edge)
    cycle = Hierarchy(edges).find_cycle()
    if cycle:
        names = {rid(t): t for t in by_tag} | {
            r.id: r.tag_on(engine.server) for r in repo.resources()
        }
        raise _refuse(
            names.get(cycle[0], cycle[0]),
            "children",
            " -> ".join(names.get(n, n) for n in cycle) + " would be a cycle",
        )


def _states_agree(engine: Engine, parent: str, child: str) -> None:
    """R21 for an existing resource: on this server, both in service or both out."""
    prec, crec = engine.repo.resource_by_tag(parent), engine.repo.resource_by_tag(child)
    pin = prec is None or (
        (st := engine.repo.local_state(prec.id)) is not None and st.state.in_service
    )
    cin = (
        crec is not None
        and (st2 := engine.repo.local_state(crec.id)) is not None
        and st2.state.in_service
    )
    if pin != cin:
        raise _refuse(
            parent,
            "children",
            f"{parent} and {child} must both be in service or both out of service here",
        )


# -- doing it ------------------------------------------------------------------------


async def apply(engine: Engine, document: Any, dry_run: bool = False) -> dict[str, Any]:
    """Apply a document (see the module docstring); the changes, made or (dry run) to make."""
    entries = read_document(document)
    new = [e for e in entries if engine.repo.resource_by_tag(e.tag) is None]
    templates = {e.template for e in new}
    if len(templates) == 1 and (template := templates.pop()) != engine.server:
        return await engine.peers.request(
            template, "apply", {"document": document, "dry_run": dry_run}, timeout=600
        )
    async with engine.catalog:
        plan, children = await plan_apply(engine, entries)
        if dry_run or not plan.summary(False)["changes"]:
            return plan.summary(dry_run)
        created = await _create(engine, plan, children)
        await _depend(engine, plan, created)
        _set_switchbacks(engine, plan)
        for server, items in sorted(plan.extend.items()):
            await extend_items(engine, server, [(tag, priority) for tag, _, priority in items])
        changed = set(created) | {
            r.id for t, _ in plan.switchback if (r := engine.repo.resource_by_tag(t))
        }
        changed |= {r.id for p, _ in plan.depend if (r := engine.repo.resource_by_tag(p))}
        engine.peers.publish_catalog(sorted(changed))
    summary = plan.summary(False)
    engine.events.add(
        "admin",
        f"applied a document: {summary['changes']} changes, {summary['unchanged']} resources unchanged",
    )
    return summary


async def _create(engine: Engine, plan: Plan, children: dict[str, set[str]]) -> dict[str, Entry]:
    """Store every new resource with its dependencies among new ones, then bring them up
    together; on any failure undo them all."""
    if not plan.create:
        return {}
    ids = {e.tag: uuid.uuid4().hex for e in plan.create}
    with engine.repo.db.transaction():
        for entry in plan.create:
            rid = ids[entry.tag]
            priority = entry.servers[engine.server]
            engine.repo.insert_resource(
                ResourceRecord(
                    rid,
                    entry.kind,
                    entry.switchback,
                    1,
                    (InstanceRecord(rid, engine.server, entry.tag, priority, entry.props),),
                )
            )
            engine.repo.set_state(rid, ResourceState.OSU, "being created", pending="create")
        for entry in plan.create:
            for child in children.get(entry.tag, ()):
                if child in ids:
                    engine.repo.add_dependency(ids[entry.tag], ids[child])
        engine.events.add("create", f"creating {len(plan.create)} resources from a document")
    plan.depend = [(p, c) for p, c in plan.depend if not (p in ids and c in ids)]
    new_ids = set(ids.values())
    hierarchies = {engine.view.members_of(rid) & new_ids for rid in new_ids}
    async with engine.locks.hold(lambda: new_ids):
        results = await engine.bring_up_many(
            [(set(h), "created from a document") for h in hierarchies]
        )
    failed = [r for r in results if not r.ok]
    if failed:
        tags = {rid: tag for tag, rid in ids.items()}
        await finish_delete_created(engine, new_ids)
        culprit = tags.get(failed[0].failed or "", "document")
        field_name = {"unique": "address", "interface": "interface"}.get(
            failed[0].step or "", "restore"
        )
        raise _refuse(
            str(culprit), field_name, f"bring-up failed, nothing applied: {failed[0].reason}"
        )
    engine.events.add("created", f"{len(plan.create)} resources in service on {engine.server}")
    return {ids[e.tag]: e for e in plan.create}


async def _depend(engine: Engine, plan: Plan, created: dict[str, Entry]) -> None:
    if not plan.depend:
        return
    with engine.repo.db.transaction():
        for parent, child in plan.depend:
            prec, crec = engine.repo.resource_by_tag(parent), engine.repo.resource_by_tag(child)
            assert prec is not None and crec is not None
            engine.repo.add_dependency(prec.id, crec.id)
            if prec.id not in created:
                engine.repo.bump_version(prec.id)
    engine.events.add("admin", f"{len(plan.depend)} dependencies added from a document")


def _set_switchbacks(engine: Engine, plan: Plan) -> None:
    if not plan.switchback:
        return
    with engine.repo.db.transaction():
        for tag, value in plan.switchback:
            rec = engine.repo.resource_by_tag(tag)
            assert rec is not None
            engine.repo.set_switchback(rec.id, value)
            engine.repo.bump_version(rec.id)
