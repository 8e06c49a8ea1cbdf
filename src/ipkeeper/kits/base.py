"""The contract every kit implements (in the spirit of the OCF agent contract).

Guarantees a caller may rely on, for every kit:
- `restore` brings the instance in service and checks it once; when it fails
  it leaves nothing half-done (what it added is removed again). Calling it on
  an instance already in service succeeds (and re-announces, re-checks).
- `remove` takes it out of service; it succeeds when already out of service.
- `quick_check` only observes; it never changes the system.
- `probe` answers only "is it active here?" (the address is configured, the
  application's check passes); a probe on a server that does not hold the
  resource is never an error.
- `time_limit` bounds each action: the kit never works longer than that
  (commands are killed at their timeout, pings end after their tries), so
  the engine can wait for an overrunning action to end before undoing it.
- `recover` tries to repair in place; it either succeeds or gives up.
- Every action returns a KitResult with a one-line reason; no action raises
  for an expected failure. Each runs within its declared timeout (the caller
  enforces it and treats an overrun as a failure).
- Actions are blocking calls: the daemon runs them in worker threads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ipkeeper.model.resource import Instance
from ipkeeper.model.states import KitResult


@dataclass(frozen=True)
class Parameter:
    """One parameter of a resource type, for CLI options, API schemas and GUI forms."""

    name: str
    help: str
    required: bool = False
    default: str | None = None
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class KitDescription:
    """What a kit is and what it takes."""

    kind: str
    summary: str
    parameters: tuple[Parameter, ...]


class Kit(Protocol):
    """A resource type's actions."""

    kind: str

    def describe(self) -> KitDescription:
        """Parameters, defaults, help and action timeouts."""
        ...

    def restore(self, instance: Instance) -> KitResult:
        """Bring in service, then check once; undo on failure."""
        ...

    def remove(self, instance: Instance) -> KitResult:
        """Take out of service; idempotent."""
        ...

    def quick_check(self, instance: Instance) -> KitResult:
        """Health check; observes only."""
        ...

    def recover(self, instance: Instance) -> KitResult:
        """Local recovery: repair in place, or give up."""
        ...

    def probe(self, instance: Instance) -> bool:
        """Is it active on this server right now? Observes only (used to reconcile)."""
        ...

    def time_limit(self, instance: Instance, action: str) -> float:
        """The longest `action` can take for `instance`, given the settings in force."""
        ...
