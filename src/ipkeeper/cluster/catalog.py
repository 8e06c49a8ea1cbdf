"""The cluster-wide catalog: every resource's definition, replicated to every server.

A resource's definition (kind, switchback, its instances on every server with
their tags, priorities and properties, and the children it depends on) is one
document with a version that grows with each change. A change is made on one
server and sent to every live peer; a server that was away learns it when it
rejoins, from an exchange of digests (id -> version and content hash).
Deletions leave tombstones that outrank the versions they deleted.

Two different documents with the same version are a conflict (a change made
on both sides of a partition): neither is applied over the other; each server
keeps its own and the conflict is reported.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ipkeeper.model.states import EXTENDED_HERE, ResourceState
from ipkeeper.store.repo import InstanceRecord, Repo, ResourceRecord


class Applied(StrEnum):
    """What applying a document or tombstone did."""

    APPLIED = "applied"
    SAME = "same"
    OLDER = "older"  # ours is newer: the sender should learn ours
    CONFLICT = "conflict"
    REFUSED = "refused"  # would remove an instance that is in service here


def export(repo: Repo, rec: ResourceRecord) -> dict[str, Any]:
    """The replicated document of one resource (children from the store's cached graph)."""
    children = sorted(repo.graph().children.get(rec.id, ()))
    return {
        "id": rec.id,
        "kind": rec.kind,
        "switchback": rec.switchback,
        "version": rec.version,
        "instances": sorted(
            (
                {"server": i.server, "tag": i.tag, "priority": i.priority, "props": i.props}
                for i in rec.instances
            ),
            key=lambda i: i["server"],
        ),
        "children": children,
    }


def content_hash(doc: dict[str, Any]) -> str:
    """A hash of everything in a document but its version."""
    body = {k: v for k, v in doc.items() if k != "version"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


def digest(repo: Repo) -> dict[str, Any]:
    """What this server holds: {resources: {id: [version, hash]}, tombstones: {id: version}}."""
    resources = {rec.id: [rec.version, content_hash(export(repo, rec))] for rec in repo.resources()}
    tombstones = {rid: version for rid, (_tag, version) in repo.tombstones().items()}
    return {"resources": resources, "tombstones": tombstones}


@dataclass(frozen=True)
class SyncPlan:
    """What to send a peer after reading its digest, and the conflicts found."""

    docs: list[str]
    tombstones: list[str]
    conflicts: list[str]


def plan_sync(mine: dict[str, Any], theirs: dict[str, Any]) -> SyncPlan:
    """Compare digests (pure): which of our documents and tombstones the peer lacks."""
    docs, tombs, conflicts = [], [], []
    their_res: dict[str, list[Any]] = theirs.get("resources", {})
    their_tombs: dict[str, int] = theirs.get("tombstones", {})
    for rid, (version, chash) in mine["resources"].items():
        if their_tombs.get(rid, 0) == version:
            conflicts.append(rid)  # deleted there, changed here, at the same count
            continue
        if their_tombs.get(rid, 0) > version:
            continue
        other = their_res.get(rid)
        if other is None or other[0] < version:
            docs.append(rid)
        elif other[0] == version and other[1] != chash:
            conflicts.append(rid)
    for rid, version in mine["tombstones"].items():
        other = their_res.get(rid)
        if other is not None and other[0] < version:
            tombs.append(rid)
    return SyncPlan(sorted(docs), sorted(tombs), sorted(conflicts))


def _verdict(repo: Repo, doc: dict[str, Any], me: str) -> Applied | None:
    """Why a document must not be applied here, or None when it may."""
    rid = doc["id"]
    tomb = repo.tombstone(rid)
    if tomb is not None and tomb >= doc["version"]:
        return Applied.OLDER
    local = repo.resource(rid)
    if local is not None:
        if doc["version"] < local.version:
            return Applied.OLDER
        if doc["version"] == local.version:
            same = content_hash(export(repo, local)) == content_hash(doc)
            return Applied.SAME if same else Applied.CONFLICT
    here = next((i for i in doc["instances"] if i["server"] == me), None)
    state = repo.local_state(rid)
    busy = state is not None and (state.state.in_service or state.pending is not None)
    if here is None and busy:
        return Applied.REFUSED
    mine = local.instance(me) if local is not None else None
    if mine is not None and here is not None and here["props"] != mine.props:
        # Only this server changes its own instance's settings: a different copy
        # means a change made here that the sender has not seen.
        return Applied.CONFLICT
    return None


def apply(repo: Repo, doc: dict[str, Any], me: str) -> Applied:
    """Store a document received from a peer, if it is newer than ours and compatible."""
    verdict = _verdict(repo, doc, me)
    if verdict is not None:
        return verdict
    rid = doc["id"]
    local = repo.resource(rid)
    here = next((i for i in doc["instances"] if i["server"] == me), None)
    state = repo.local_state(rid)
    with repo.db.transaction():
        if local is None:
            repo.insert_resource(
                ResourceRecord(rid, doc["kind"], doc["switchback"], doc["version"])
            )
        else:
            repo.update_resource(rid, doc["switchback"], doc["version"])
        repo.clear_instances(rid)
        for inst in doc["instances"]:
            repo.put_instance(
                InstanceRecord(rid, inst["server"], inst["tag"], inst["priority"], inst["props"])
            )
        repo.set_children(rid, list(doc["children"]))
        if here is not None and state is None:
            repo.set_state(rid, ResourceState.OSU, EXTENDED_HERE)
        elif here is None and state is not None:
            repo.drop_state(rid)
    return Applied.APPLIED


def apply_tombstone(repo: Repo, rid: str, version: int, tag: str) -> Applied:
    """Delete a resource a peer deleted, unless ours is newer or in service here."""
    local = repo.resource(rid)
    if local is None:
        repo.add_tombstone(rid, tag, version)
        return Applied.SAME
    if local.version == version:
        return Applied.CONFLICT
    if local.version > version:
        return Applied.OLDER
    state = repo.local_state(rid)
    if state is not None and (state.state.in_service or state.pending is not None):
        return Applied.REFUSED
    repo.delete_resource(rid, version)
    return Applied.APPLIED


def order_children_first(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Documents sorted so that a child comes before the parents that name it."""
    by_id = {d["id"]: d for d in docs}
    ordered: list[dict[str, Any]] = []
    seen: set[str] = set()

    def visit(doc: dict[str, Any]) -> None:
        if doc["id"] in seen:
            return
        seen.add(doc["id"])
        for child in doc["children"]:
            if child in by_id:
                visit(by_id[child])
        ordered.append(doc)

    for doc in docs:
        visit(doc)
    return ordered
