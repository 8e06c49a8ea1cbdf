"""The cluster's history (R29): every server's events, merged by time.

Each server keeps its own event log. The server asked gathers the others'
through the cluster ("events", served by cluster/service.py with `serve`
below) and merges them by time stamp, so the servers' clocks should agree
(NTP). A server that does not answer is named in `unreachable` with the
reason, and the rest is still returned: history is most wanted when
something is broken.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from ipkeeper.engine.core import Engine
from ipkeeper.engine.errors import OpError

MAX_LIMIT = 10000
ASK_TIMEOUT = 5.0  # seconds for each peer: a slow one must not hold up the others


@dataclass(frozen=True)
class HistoryQuery:
    """Which events: the last `limit` at or after `since`, of `tag`, of these kinds."""

    limit: int = 200
    since: float | None = None
    tag: str | None = None
    kinds: tuple[str, ...] = ()

    def params(self, tag: str | None) -> dict[str, Any]:
        """The query as a peer receives it, with the resource's tag on that peer."""
        return {"limit": self.limit, "since": self.since, "tag": tag, "kinds": list(self.kinds)}

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> HistoryQuery:
        """A query sent by a peer; OpError naming the field when it is malformed."""
        try:
            limit = int(params.get("limit", 200))
            since = params.get("since")
            since = None if since is None else float(since)
            tag = params.get("tag")
            kinds = tuple(str(k) for k in params.get("kinds", []))
        except (TypeError, ValueError) as exc:
            raise OpError("events", f"malformed query: {exc}") from None
        if not 1 <= limit <= MAX_LIMIT:
            raise OpError("limit", f"must be between 1 and {MAX_LIMIT}")
        return cls(limit, since, None if tag is None else str(tag), kinds)


def local_events(engine: Engine, query: HistoryQuery, tag: str | None) -> list[dict[str, Any]]:
    """This server's events matching `query`, with `tag` as this server names the resource."""
    found = engine.events.search(query.limit, query.since, tag, query.kinds)
    return [e.as_dict() for e in found]


def serve(engine: Engine, params: dict[str, Any]) -> dict[str, Any]:
    """The answer to a peer's "events" request: this server's matching events."""
    query = HistoryQuery.from_params(params)
    return {"events": local_events(engine, query, query.tag)}


def _tag_on(engine: Engine, tag: str | None, server: str) -> str | None:
    """The tag a server knows the resource by (a target tag may differ)."""
    if tag is None:
        return None
    rec = engine.repo.resource_by_tag(tag)
    inst = rec.instance(server) if rec else None
    return inst.tag if inst else tag


async def _ask(engine: Engine, server: str, query: HistoryQuery) -> list[dict[str, Any]]:
    tag = _tag_on(engine, query.tag, server)
    if server == engine.server:
        return local_events(engine, query, tag)
    answer = await engine.peers.request(server, "events", query.params(tag), timeout=ASK_TIMEOUT)
    return list(answer.get("events", []))


async def gather(
    engine: Engine, query: HistoryQuery, servers: list[str] | None = None
) -> dict[str, Any]:
    """The events of `servers` (default: every server), merged by time, oldest first."""
    names = [s["name"] for s in engine.peers.servers()]
    unknown = [s for s in servers or [] if s not in names]
    if unknown:
        raise OpError(
            "server",
            f"{', '.join(unknown)} is not a server of this cluster (servers: {', '.join(names)})",
            status=404,
        )
    wanted = [n for n in names if not servers or n in servers]
    answers = await asyncio.gather(
        *(_ask(engine, server, query) for server in wanted), return_exceptions=True
    )
    merged: list[dict[str, Any]] = []
    answered: list[str] = []
    unreachable: list[dict[str, str]] = []
    for server, answer in zip(wanted, answers, strict=True):
        if isinstance(answer, OpError):
            unreachable.append({"server": server, "reason": answer.reason})
        elif isinstance(answer, BaseException):
            raise answer
        else:
            answered.append(server)
            merged.extend(answer)
    merged.sort(key=lambda e: (e["ts"], e["server"], e["id"]))
    return {"events": merged[-query.limit :], "servers": answered, "unreachable": unreachable}
