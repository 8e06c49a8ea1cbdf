"""The group kit: a resource with no action of its own, which others depend on.

A group is the root of a hierarchy that moves many resources as one (a
load-balancer's hundreds of VIPs, say), as Pacemaker's group resource is:
make each VIP its child (`ipkeeper depend GROUP VIP`) and the whole set
fails over, switches over and is taken out of service together, its
siblings brought up in one batch. Bringing a group up or down does nothing
by itself; its state is its children's state.
"""

from __future__ import annotations

from ipkeeper.kits.base import KitDescription, Parameter
from ipkeeper.model.resource import Instance
from ipkeeper.model.states import KitResult


class GroupKit:
    """Actions of the group resource type: each succeeds at once."""

    kind = "group"

    def describe(self) -> KitDescription:
        """Parameters of `create group`."""
        return KitDescription(
            kind=self.kind,
            summary="A set of resources that moves as one (make them its children)",
            parameters=(Parameter("tag", "unique name", required=True),),
        )

    def restore(self, instance: Instance) -> KitResult:
        """Nothing to start: its children are what comes up."""
        return KitResult.success("group in service")

    def remove(self, instance: Instance) -> KitResult:
        """Nothing to stop."""
        return KitResult.success("group out of service")

    def quick_check(self, instance: Instance) -> KitResult:
        """Always healthy: each child is checked on its own."""
        return KitResult.success("group: its children are checked on their own")

    def recover(self, instance: Instance) -> KitResult:
        """Nothing to repair."""
        return KitResult.success("group: nothing to recover")

    def probe(self, instance: Instance) -> bool:
        """A group leaves no trace on the system: never found active by itself."""
        return False

    def time_limit(self, instance: Instance, action: str) -> float:
        """Every action is immediate."""
        return 5.0
