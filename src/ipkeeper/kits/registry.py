"""The explicit registry of kits: no discovery by name, a loud error for an unknown kind."""

from __future__ import annotations

from ipkeeper.kits.base import Kit


class UnknownKit(LookupError):
    """A resource kind no registered kit provides."""


class KitRegistry:
    """Maps a resource kind ("ip", "app") to the kit that acts on it."""

    def __init__(self, *kits: Kit) -> None:
        self._kits = {kit.kind: kit for kit in kits}

    def get(self, kind: str) -> Kit:
        """The kit for `kind`; UnknownKit lists the known kinds."""
        try:
            return self._kits[kind]
        except KeyError:
            known = ", ".join(sorted(self._kits))
            raise UnknownKit(f"no kit for resource type {kind!r} (known: {known})") from None

    def kinds(self) -> list[str]:
        """Every registered kind."""
        return sorted(self._kits)
