"""States of an instance and results of kit actions (pure data)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class ResourceState(StrEnum):
    """State of one instance on one server (SPEC.md, words used)."""

    ISP = "ISP"  # in service, protected
    ISU = "ISU"  # in service, unprotected (monitoring off or failed to re-arm)
    OSU = "OSU"  # out of service, unimpaired
    OSF = "OSF"  # out of service, failed

    @property
    def in_service(self) -> bool:
        """True for ISP and ISU."""
        return self in (ResourceState.ISP, ResourceState.ISU)


class Outcome(StrEnum):
    """What a kit action's result means for recovery (in the manner of OCF)."""

    OK = "ok"
    NOT_RUNNING = "not-running"  # cleanly absent: nothing to recover here
    FAILED_LOCAL = "failed-local"  # try local recovery on this server
    FAILED_NODE = "failed-node"  # this server cannot do it: fail over
    FAILED_CONFIG = "failed-config"  # nowhere can do it as configured: do not fail over, alert


@dataclass(frozen=True)
class KitResult:
    """The result of a kit action with a one-line reason.

    `step` names the part that failed (for a check: "address", "link",
    "reachability"); `timings` holds seconds per part; `details` anything
    worth showing (the responder that answered, the holder of a duplicate).
    """

    outcome: Outcome
    reason: str
    step: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when the action succeeded."""
        return self.outcome is Outcome.OK

    @classmethod
    def success(cls, reason: str, **kw: Any) -> KitResult:
        """A successful result."""
        return cls(Outcome.OK, reason, **kw)


# The reason of a state recorded only because a peer's definition names this server:
# nothing was ever decided here about that instance (a fresh extension, or a store
# rebuilt from a peer's definitions after it was lost).
EXTENDED_HERE = "extended here"
