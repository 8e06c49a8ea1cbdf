"""Which ipkeeper version each server runs, from the handshakes of its comm paths.

The guide requires the same version on every server. Each hello says which
version its sender runs (wire.py); a peer whose version differs from this
server's is marked in `status` and reported by an event, once per version it
is seen running (and once more when it runs this server's version again).
"""

from __future__ import annotations

from collections.abc import Iterable

from ipkeeper import __version__
from ipkeeper.cluster.commpath import CommPath

OURS = __version__


def peer_version(channels: Iterable[CommPath]) -> str | None:
    """The version `channels`' peer named: a connected channel's, else the last any
    channel heard (None: no handshake yet)."""
    heard = [c for c in channels if c.peer_software is not None]
    connected = [c for c in heard if c.connected]
    chosen = connected or heard
    return chosen[0].peer_software if chosen else None


def differs(version: str | None, ours: str = OURS) -> bool:
    """True when a peer is known to run another version than this server."""
    return version is not None and version != ours


class VersionWatch:
    """What has been said about each peer's version, so each change is said once."""

    def __init__(self, ours: str = OURS) -> None:
        self.ours = ours
        self._said: dict[str, str] = {}

    def news(self, peer: str, version: str | None) -> str | None:
        """The event message for `peer` now running `version`, when there is news."""
        if version is None or self._said.get(peer, self.ours) == version:
            return None
        before = self._said.get(peer)
        self._said[peer] = version
        if version == self.ours:
            return f"{peer} now runs ipkeeper {version}, as this server does" if before else None
        shown = "an unknown version (older than 0.1.1)" if version == "unknown" else version
        return (
            f"{peer} runs ipkeeper {shown}, this server {self.ours}: every server of a cluster "
            "must run the same version"
        )
