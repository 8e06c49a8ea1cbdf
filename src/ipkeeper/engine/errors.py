"""Refusals of administrative operations: a field, a reason, an HTTP status."""

from __future__ import annotations

# A write the disk refused (store/health.py): field "store", status 503; the API and the
# cluster's requests answer it like a refusal.
from ipkeeper.store.health import StoreUnavailable as StoreUnavailable


class OpError(Exception):
    """An operation refused or failed; nothing was changed unless the reason says so."""

    def __init__(self, field: str, reason: str, status: int = 400) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
        self.status = status


def not_found(tag: str) -> OpError:
    """The error for an unknown tag."""
    return OpError("tag", f"no resource {tag!r}", status=404)


def conflict(field: str, reason: str) -> OpError:
    """The error for a request that clashes with the current state."""
    return OpError(field, reason, status=409)
