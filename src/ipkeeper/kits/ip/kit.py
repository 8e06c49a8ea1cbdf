"""The IP kit: bring a VIP up, take it down, check it, recover it (R6-R10, R14, R15)."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from typing import Any, TypeVar

from ipkeeper.config.tunables import Tunables
from ipkeeper.kits.base import KitDescription, Parameter
from ipkeeper.kits.ip import netlink, packets
from ipkeeper.kits.ip.check import HealthCheck, PingLists
from ipkeeper.kits.ip.interfaces import InterfaceInfo
from ipkeeper.kits.ip.params import IPAddress, IPInterface, IPSpec
from ipkeeper.model.resource import Instance
from ipkeeper.model.states import KitResult, Outcome

T = TypeVar("T")


def _no_ping_lists(_spec: IPSpec) -> list[IPAddress]:
    return []


class _Timer:
    """Records how long each part of an action took."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    def __call__(self, part: str, fn: Callable[[], T]) -> T:
        start = time.monotonic()
        try:
            return fn()
        finally:
            self.timings[part] = time.monotonic() - start


class IPKit:
    """Actions of the IP resource type, following kits/base.py's contract."""

    kind = "ip"

    def __init__(self, tunables: Tunables, ping_lists: PingLists = _no_ping_lists) -> None:
        self.tunables = tunables
        self.check = HealthCheck(tunables, ping_lists)

    def describe(self) -> KitDescription:
        """Parameters of `create ip` and the action timeouts."""
        return KitDescription(
            kind=self.kind,
            summary="A virtual IP address, moved between servers and checked by ping",
            parameters=(
                Parameter("address", "IPv4/IPv6 address or host name (R1)", required=True),
                Parameter("netmask", "dotted IPv4 netmask or prefix length (R2)", required=True),
                Parameter("interface", "interface to carry it; default: the best valid one (R3)"),
                Parameter("tag", "unique name; default ip-<address as entered> (R4)"),
                Parameter(
                    "source_address",
                    "outgoing traffic to the subnet uses the VIP (R14)",
                    default="no",
                    choices=("yes", "no"),
                ),
                Parameter(
                    "restore_recover",
                    "activate and check the address (R15)",
                    default="enable",
                    choices=("enable", "disable"),
                ),
            ),
        )

    # -- this server's network, for validation and views (R3, R13, R14) -------

    def interfaces(self) -> list[InterfaceInfo]:
        """Every interface here, with its state and addresses."""
        return netlink.interfaces()

    def own_addresses(self) -> set[IPAddress]:
        """Every address configured here."""
        return netlink.own_addresses()

    def addresses_on(self, ifname: str) -> list[IPInterface]:
        """The addresses configured on `ifname`."""
        return netlink.addresses_on(ifname)

    # -- uniqueness and announcement ------------------------------------------

    def holder(self, spec: IPSpec) -> str | None:
        """R6: the MAC of another host using the address, or None (the network is asked)."""
        wait = self.tunables.get("IP_UNIQUE_WAIT")
        probes = self.tunables.get("IP_UNIQUE_PROBES")
        if isinstance(spec.address, ipaddress.IPv4Address):
            return packets.arp_probe(spec.interface, spec.address, wait=wait, probes=probes)
        return packets.dad_probe(spec.interface, spec.address, wait=wait, probes=probes)

    def announce(self, spec: IPSpec) -> None:
        """R7: gratuitous ARP (IPv4) or unsolicited NA (IPv6), IP_GARP_COUNT times."""
        for _ in range(self.tunables.get("IP_GARP_COUNT")):
            if isinstance(spec.address, ipaddress.IPv4Address):
                packets.gratuitous_arp(spec.interface, spec.address)
            else:
                packets.unsolicited_na(spec.interface, spec.address)

    # -- source address (R14) ------------------------------------------------

    def _apply_source(self, spec: IPSpec) -> None:
        if spec.source_address and spec.address.version == 4:
            netlink.set_route_source(spec.network, spec.interface, spec.address)

    def _undo_source(self, spec: IPSpec) -> None:
        route = netlink.subnet_route(spec.network)
        if route is None or route.prefsrc != spec.address:
            return
        # The kernel would delete the route with the address it names as source:
        # hand the route back to this server's own address in the subnet first.
        others = [
            a.ip
            for a in netlink.addresses_on(spec.interface)
            if a.version == spec.address.version and a.ip != spec.address and a.ip in spec.network
        ]
        if others:
            netlink.set_route_source(spec.network, spec.interface, others[0])

    def source_effective(self, spec: IPSpec) -> bool:
        """True when traffic to the subnet currently leaves with this VIP as source."""
        route = netlink.subnet_route(spec.network)
        return route is not None and route.prefsrc == spec.address

    # -- the contract --------------------------------------------------------

    def restore(self, instance: Instance) -> KitResult:
        """R7: unique check, add, announce, source address, check once; undo on failure."""
        spec = IPSpec.from_props(instance.props)
        if not spec.restore_recover:
            return KitResult.success(
                "in service without the address (restore-and-recover disabled)"
            )
        timer = _Timer()
        if not netlink.link_state(spec.interface).exists:
            return KitResult(
                Outcome.FAILED_NODE, f"{spec.interface} does not exist", step="interface"
            )
        try:
            present = netlink.has_address(spec.interface, spec.address)
            if not present and not self.tunables.get("NOIPUNIQUE"):
                holder = timer("unique", lambda: self.holder(spec))
                if holder:
                    return KitResult(
                        Outcome.FAILED_NODE,
                        f"{spec.address} is already in use on the network "
                        f"(answered by {holder}); not added",
                        step="unique",
                        timings=timer.timings,
                        details={"holder": holder},
                    )
            timer("add", lambda: netlink.add_address(spec.interface, spec.cidr))
            timer("announce", lambda: self.announce(spec))
            timer("source", lambda: self._apply_source(spec))
            result = timer("check", lambda: self.check.run(instance.tag, spec))
        except Exception as exc:  # whatever went wrong, leave nothing half-done
            self._undo(spec)
            return KitResult(
                Outcome.FAILED_NODE,
                f"bring-up failed: {exc}; address removed",
                step="add",
                timings=timer.timings,
            )
        if not result.ok:
            self._undo(spec)
            return KitResult(
                Outcome.FAILED_NODE,
                f"check after bring-up failed at {result.reason}; address removed",
                step=result.step,
                timings=timer.timings,
            )
        adopted = " (already present: adopted)" if present else ""
        return KitResult.success(
            f"{spec.cidr} up on {spec.interface}{adopted}; {result.reason}",
            timings=timer.timings,
            details=result.details,
        )

    def _undo(self, spec: IPSpec) -> None:
        self._undo_source(spec)
        netlink.delete_address(spec.interface, spec.cidr)

    def remove(self, instance: Instance) -> KitResult:
        """R8: give the subnet route back, delete the address; fine if already absent."""
        spec = IPSpec.from_props(instance.props)
        self.check.forget(instance.tag)
        try:
            present = netlink.has_address(spec.interface, spec.address)
            self._undo(spec)
        except (OSError, netlink.NetlinkFailure) as exc:
            return KitResult(Outcome.FAILED_NODE, f"take-down failed: {exc}", step="remove")
        return KitResult.success(
            f"{spec.cidr} removed from {spec.interface}"
            if present
            else f"{spec.address} already absent"
        )

    def quick_check(self, instance: Instance) -> KitResult:
        """R9: address, link, reachability; the first failing step and why."""
        spec = IPSpec.from_props(instance.props)
        if not spec.restore_recover:
            return KitResult.success("not checked (restore-and-recover disabled)")
        return self.check.run(instance.tag, spec)

    def time_limit(self, instance: Instance, action: str) -> float:
        """A check pings at most IP_PINGTRIES times IP_PINGTIME, twice (saved responder, then
        broadcast); a bring-up adds the unique check and netlink work."""
        ping = self.tunables.get("IP_PINGTIME") * (self.tunables.get("IP_PINGTRIES") + 1)
        check = ping + 5.0
        bring_up = self.tunables.get("IP_UNIQUE_WAIT") + check + 5.0
        return {"restore": bring_up, "recover": bring_up, "quick_check": check}.get(action, 10.0)

    def probe(self, instance: Instance) -> bool:
        """True when the address is configured here (on any interface)."""
        spec = IPSpec.from_props(instance.props)
        return netlink.where_is(spec.address) is not None

    def recover(self, instance: Instance) -> KitResult:
        """R10: re-add and re-announce on the same interface, re-check; or give up."""
        result = self.restore(instance)
        if result.ok:
            return KitResult.success(f"recovered: {result.reason}", timings=result.timings)
        return KitResult(
            Outcome.FAILED_NODE,
            f"local recovery failed: {result.reason}",
            step=result.step,
            timings=result.timings,
        )


def describe_props(spec: IPSpec) -> dict[str, Any]:
    """R12's IP-specific properties, as shown by `show`."""
    from ipkeeper.kits.ip.params import dotted_netmask

    return {
        "virtual_ip": str(spec.address),
        "netmask": dotted_netmask(spec.cidr),
        "subnet": str(spec.network),
        "prefix_bits": spec.prefix,
        "interface": spec.interface,
        "source_address": "yes" if spec.source_address else "no",
        "restore_recover": "enable" if spec.restore_recover else "disable",
    }
