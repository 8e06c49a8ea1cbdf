"""What the engine needs to know and ask of the rest of the cluster: the seam through
which a coordination backend supplies membership, holders and definitions.

The comm paths implement it today (cluster/service.py), feeding the peer
table (engine/peertable.py) with liveness and reports and carrying requests
and catalog documents; a distributed store could implement it the same way,
as Patroni's DCS layer does. `Standalone` is the one-server answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from ipkeeper.engine.errors import OpError
from ipkeeper.engine.peertable import PeerTable, Reported


class Peers(Protocol):
    """The engine's view of the other servers.

    Facts come from `table`, which the backend keeps current; the methods
    below read it or ask the other servers.
    """

    table: PeerTable

    def alive(self) -> set[str]:
        """Servers alive now, this one included."""
        ...

    def has_quorum(self) -> bool:
        """False when this server may not take anything over (R32)."""
        ...

    def states_of(self, server: str) -> Mapping[str, Reported]:
        """The last states `server` reported, by resource id (empty when never heard)."""
        ...

    def has_reported(self, server: str) -> bool:
        """True once `server` has reported its states since it (last) became alive."""
        ...

    def forget_holding(self, server: str, resource_ids: set[str]) -> bool:
        """Take `server`'s last report as holding, or handing over, none of these any more.

        Used for a server that is not alive: once another server has held the
        hierarchy, or an administrator has taken it out of service, what the
        dead server held (or gave up) when it died must not cause another
        takeover. True when anything was forgotten.
        """
        ...

    def servers(self) -> list[dict[str, Any]]:
        """Every server with its liveness and comm paths, for status."""
        ...

    def quorum(self) -> dict[str, Any]:
        """Quorum mode and votes, for status."""
        ...

    async def request(
        self, server: str, method: str, params: dict[str, Any], timeout: float = 60.0
    ) -> dict[str, Any]:
        """Run `method` on `server`; raises OpError with its field and reason."""
        ...

    def publish_catalog(self, resource_ids: list[str]) -> None:
        """Send the current definitions of these resources to every live peer."""
        ...

    def publish_deletion(self, resource_id: str, version: int, tag: str) -> None:
        """Tell every live peer that a resource was deleted."""
        ...

    async def push_catalog(self, server: str, resource_ids: list[str]) -> None:
        """Send these definitions to `server` and wait until it has stored them."""
        ...


class Standalone:
    """A server without peers."""

    def __init__(self, me: str, table: PeerTable | None = None) -> None:
        self.me = me
        self.table = table or PeerTable(me)

    def alive(self) -> set[str]:
        """Only this server."""
        return {self.me}

    def has_quorum(self) -> bool:
        """Always: there is nobody to disagree with."""
        return True

    def states_of(self, server: str) -> Mapping[str, Reported]:
        """No other server ever reports."""
        return {}

    def has_reported(self, server: str) -> bool:
        """No other server exists to report."""
        return False

    def forget_holding(self, server: str, resource_ids: set[str]) -> bool:
        """No other server ever held anything."""
        return False

    def servers(self) -> list[dict[str, Any]]:
        """This server alone."""
        return [{"name": self.me, "alive": True, "local": True, "witness": False, "comm_paths": []}]

    def quorum(self) -> dict[str, Any]:
        """No quorum on one server."""
        return {"mode": "none", "votes": 1, "of": 1, "has_quorum": True, "note": "one server"}

    async def request(
        self, server: str, method: str, params: dict[str, Any], timeout: float = 60.0
    ) -> dict[str, Any]:
        """There is no other server to ask."""
        raise OpError("server", f"{server} is not a server of this cluster", status=404)

    def publish_catalog(self, resource_ids: list[str]) -> None:
        """Nobody to tell."""

    def publish_deletion(self, resource_id: str, version: int, tag: str) -> None:
        """Nobody to tell."""

    async def push_catalog(self, server: str, resource_ids: list[str]) -> None:
        """There is no other server."""
        raise OpError("server", f"{server} is not a server of this cluster", status=404)
