"""Many VIPs at once: the IP kit's restore, remove and check for a whole batch.

The same steps as one VIP's (kit.py), each done once for the batch:
unique-address probes for every address listened to in one window per
interface, the addresses added in batched netlink requests, the first
announcement of every address sent at once (the repeats follow from
announce.py's thread), the source-address setting
applied once per subnet, and the check after bring-up pinging once per
subnet. A VIP whose step fails is undone alone; the others go on. What a
bring-up undoes is only what it did: an address that was already there
(adopted) stays when its check fails, and the result says so
(`details["adopted"]`).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from ipkeeper.kits.ip import netlink
from ipkeeper.kits.ip.params import IPSpec
from ipkeeper.model.resource import Instance
from ipkeeper.model.states import KitResult, Outcome

if TYPE_CHECKING:
    from ipkeeper.kits.ip.kit import IPKit

log = logging.getLogger("ipkeeper.ipkit")

T = TypeVar("T")


def _failed(reason: str, step: str, timings: dict[str, float], **details: object) -> KitResult:
    return KitResult(
        Outcome.FAILED_NODE, reason, step=step, timings=dict(timings), details=dict(details)
    )


class _Clock:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    def __call__(self, part: str, fn: Callable[[], T]) -> T:
        start = time.monotonic()
        try:
            return fn()
        finally:
            self.timings[part] = self.timings.get(part, 0.0) + time.monotonic() - start


def restore_many(kit: IPKit, instances: Sequence[Instance]) -> list[KitResult]:
    """Bring every VIP up (R6, R7), checking each once; each one's result."""
    specs = [kit.spec(i) for i in instances]
    results: list[KitResult | None] = [None] * len(specs)
    clock = _Clock()
    todo: list[int] = []
    for i, spec in enumerate(specs):
        if not spec.restore_recover:
            results[i] = KitResult.success(
                "in service without the address (restore-and-recover disabled)"
            )
        elif not kit.link_state(spec.interface).exists:
            results[i] = _failed(f"{spec.interface} does not exist", "interface", {})
        else:
            todo.append(i)
    present = {i: kit.has_address(specs[i]) for i in todo}
    if not kit.tunables.get("NOIPUNIQUE"):
        clock("unique", lambda: _unique(kit, specs, [i for i in todo if not present[i]], results))
    adding = [i for i in todo if results[i] is None]
    _promote_secondaries({specs[i].interface for i in adding if specs[i].address.version == 4})
    errors = clock(
        "add", lambda: netlink.add_addresses([(specs[i].interface, specs[i].cidr) for i in adding])
    )
    for i, error in zip(adding, errors, strict=True):
        if error is None:
            kit.noted(specs[i], present=True)
        else:
            results[i] = _failed(
                f"bring-up failed: adding {specs[i].cidr} to {specs[i].interface}: {error}",
                "add",
                clock.timings,
            )
    up = [i for i in adding if results[i] is None]
    clock("announce", lambda: _announce(kit, [specs[i] for i in up]))
    clock("source", lambda: _sources(kit, [specs[i] for i in up]))
    checks = clock("check", lambda: _check_once(kit, [specs[i] for i in up]))
    undo = []
    for i, check in zip(up, checks, strict=True):
        if check.ok:
            adopted = " (already present: adopted)" if present[i] else ""
            results[i] = KitResult.success(
                f"{specs[i].cidr} up on {specs[i].interface}{adopted}; {check.reason}",
                timings=dict(clock.timings),
                details=check.details,
            )
        elif present[i]:
            # Not added by this bring-up: never removed by it either.
            results[i] = _failed(
                f"check after bring-up failed at {check.reason}; "
                "the address was there before and is left as it was",
                check.step or "check",
                clock.timings,
                **{**check.details, "adopted": True},
            )
        else:
            results[i] = _failed(
                f"check after bring-up failed at {check.reason}; address removed",
                check.step or "check",
                clock.timings,
                **check.details,
            )
            undo.append(specs[i])
    failed_adds = [specs[i] for i in adding if i not in up]
    if undo or failed_adds:
        _take_down(kit, [*undo, *failed_adds])
    return [r if r is not None else _failed("not done", "add", {}) for r in results]


def _promote_secondaries(interfaces: set[str]) -> None:
    """See netlink.promote_secondaries: on before any VIP goes on an interface."""
    for ifname in sorted(interfaces):
        try:
            if netlink.promote_secondaries(ifname):
                log.warning("%s: promote_secondaries turned on (taking one VIP down must not "
                            "take down the others of its subnet)", ifname)  # fmt: skip
        except netlink.NetlinkFailure as exc:
            log.error("%s; removing a subnet's first VIP will remove the others with it", exc)


def _unique(
    kit: IPKit, specs: list[IPSpec], indexes: list[int], results: list[KitResult | None]
) -> None:
    """R6 for every address not yet here: one probe window per interface."""
    try:
        holders = kit.holders([specs[i] for i in indexes])
    except OSError as exc:
        for i in indexes:
            results[i] = _failed(f"cannot probe for the address: {exc}", "interface", {})
        return
    for i in indexes:
        holder = holders.get(specs[i].address)
        if holder:
            results[i] = _failed(
                f"{specs[i].address} is already in use on the network "
                f"(answered by {holder}); not added",
                "unique",
                {},
                holder=holder,
            )


def _by_interface(specs: list[IPSpec]) -> dict[str, list[IPSpec]]:
    by_interface: dict[str, list[IPSpec]] = defaultdict(list)
    for spec in specs:
        by_interface[spec.interface].append(spec)
    return by_interface


def _announce(kit: IPKit, specs: list[IPSpec]) -> None:
    """R7: every address announced now, its repeats planned (kits/ip/announce.py)."""
    for ifname, mine in _by_interface(specs).items():
        kit.announcer.announce(ifname, [s.address for s in mine])


def announce_many(kit: IPKit, instances: Sequence[Instance]) -> list[KitResult]:
    """R7 again for VIPs that are up here: the announcements, nothing else."""
    specs = [kit.spec(i) for i in instances]
    here = [s for s in specs if kit.has_address(s)]
    try:
        _announce(kit, here)
    except OSError as exc:
        return [
            KitResult(Outcome.FAILED_NODE, f"announcement failed: {exc}", step="announce")
        ] * len(specs)
    return [
        KitResult.success(f"{s.address} announced on {s.interface}")
        if s in here
        else KitResult(Outcome.FAILED_NODE, f"{s.address} is not up here", step="announce")
        for s in specs
    ]


def _sources(kit: IPKit, specs: list[IPSpec]) -> None:
    """R14: the subnet route's source, once per subnet (the last one brought up wins)."""
    last: dict[tuple[object, str], IPSpec] = {}
    for spec in specs:
        if spec.source_address and spec.address.version == 4:
            last[(spec.network, spec.interface)] = spec
    for spec in last.values():
        netlink.set_route_source(spec.network, spec.interface, spec.address)


def _check_once(kit: IPKit, specs: list[IPSpec]) -> list[KitResult]:
    """R7's check after bring-up: address and link for each, one ping per subnet."""
    tested: dict[tuple[object, str, bool], KitResult] = {}
    results = []
    for spec in specs:
        local = kit.check.local_steps(spec)
        if local is not None:
            results.append(local)
            continue
        where = (spec.network, spec.interface, spec.broadcast_ping)
        if where not in tested:
            tested[where] = kit.check.reach.test(spec)
        results.append(tested[where])
    return results


def _take_down(kit: IPKit, specs: list[IPSpec]) -> list[str | None]:
    for ifname, mine in _by_interface(specs).items():
        kit.announcer.forget(ifname, [s.address for s in mine])
        kit.conflicts.unwatch(ifname, [s.address for s in mine])
    try:
        kit.undo_sources(specs)
    except netlink.NetlinkFailure as exc:
        # A VIP left up after its take-down is far worse than a subnet route the kernel
        # re-makes from the address it promotes: the addresses go all the same.
        log.warning("%s; removing the addresses all the same", exc)
    errors = netlink.delete_addresses([(s.interface, s.cidr) for s in specs])
    for spec, error in zip(specs, errors, strict=True):
        if error is None:
            kit.noted(spec, present=False)
    return errors


def remove_many(kit: IPKit, instances: Sequence[Instance]) -> list[KitResult]:
    """R8 for every VIP: routes handed back, addresses deleted; absent is fine."""
    specs = [kit.spec(i) for i in instances]
    present = [kit.has_address(s) for s in specs]
    try:
        errors = _take_down(kit, specs)
    except (OSError, netlink.NetlinkFailure) as exc:
        return [KitResult(Outcome.FAILED_NODE, f"take-down failed: {exc}", step="remove")] * len(
            specs
        )
    results = []
    for spec, was, error in zip(specs, present, errors, strict=True):
        if error is not None:
            results.append(
                KitResult(Outcome.FAILED_NODE, f"take-down failed: {error}", step="remove")
            )
        else:
            results.append(
                KitResult.success(
                    f"{spec.cidr} removed from {spec.interface}"
                    if was
                    else f"{spec.address} already absent"
                )
            )
    return results


def check_many(kit: IPKit, instances: Sequence[Instance]) -> list[KitResult]:
    """R9 for every VIP, with each subnet's shared reachability; never waits on a ping."""
    specs = [kit.spec(i) for i in instances]
    checked = iter(kit.check.run_many([s for s in specs if s.restore_recover]))
    return [
        next(checked)
        if spec.restore_recover
        else KitResult.success("not checked (restore-and-recover disabled)")
        for spec in specs
    ]
