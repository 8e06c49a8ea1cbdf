"""The IP kit: bring a VIP up, take it down, check it, recover it (R6-R10, R14, R15)."""

from __future__ import annotations

from typing import Any, TypeVar

from ipkeeper.config.tunables import Tunables
from ipkeeper.kits.base import KitDescription, Parameter
from ipkeeper.kits.ip import batch, netlink, packets
from ipkeeper.kits.ip.announce import Announcer
from ipkeeper.kits.ip.check import HealthCheck, PingLists
from ipkeeper.kits.ip.conflict import ConflictWatch
from ipkeeper.kits.ip.interfaces import InterfaceInfo
from ipkeeper.kits.ip.params import IPAddress, IPInterface, IPNetwork, IPSpec
from ipkeeper.model.resource import Instance
from ipkeeper.model.states import KitResult, Outcome

T = TypeVar("T")


def _no_ping_lists(_spec: IPSpec) -> list[IPAddress]:
    return []


class IPKit:
    """Actions of the IP resource type, following kits/base.py's contract."""

    kind = "ip"

    def __init__(
        self,
        tunables: Tunables,
        ping_lists: PingLists = _no_ping_lists,
        host: netlink.HostNet | None = None,
    ) -> None:
        self.tunables = tunables
        self.host = host  # the host's links and addresses in memory, when the daemon keeps them
        self.check = HealthCheck(tunables, ping_lists, host)
        self.announcer = Announcer(tunables, host.has_address if host else None)
        # Others announcing a VIP held here (kits/ip/conflict.py); the engine says what to
        # watch (engine/conflicts.py), a take-down stops it before the address goes.
        self.conflicts = ConflictWatch(
            tunables, self.announcer.announce, host.has_address if host else None
        )
        self._specs: dict[str, tuple[object, IPSpec]] = {}

    def spec(self, instance: Instance) -> IPSpec:
        """The parsed properties of `instance` (parsed once per change of its properties)."""
        cached = self._specs.get(instance.tag)
        if cached is not None and cached[0] is instance.props:
            return cached[1]
        spec = IPSpec.from_props(instance.props)
        self._specs[instance.tag] = (instance.props, spec)
        return spec

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
                Parameter(
                    "broadcast_ping",
                    "no: no broadcast ping without a ping list, NOBCASTPING for it alone (R9)",
                    default="yes",
                    choices=("yes", "no"),
                ),
                Parameter("pinglist", "addresses to ping instead of the broadcast (R13)"),
            ),
        )

    # -- this server's network, for validation and views (R3, R13, R14) -------

    def interfaces(self) -> list[InterfaceInfo]:
        """Every interface here, with its state and addresses."""
        return self.host.interfaces() if self.host else netlink.interfaces()

    def own_addresses(self) -> set[IPAddress]:
        """Every address configured here."""
        return self.check.own_addresses()

    def addresses_on(self, ifname: str) -> list[IPInterface]:
        """The addresses configured on `ifname` (from the host's copy when there is one)."""
        return self.host.addresses_on(ifname) if self.host else netlink.addresses_on(ifname)

    def link_state(self, ifname: str) -> netlink.LinkState:
        """Whether `ifname` exists, is up and has carrier."""
        return self.host.link_state(ifname) if self.host else netlink.link_state(ifname)

    def has_address(self, spec: IPSpec) -> bool:
        """True when the VIP is configured on its interface."""
        if self.host is not None:
            return self.host.has_address(spec.interface, spec.address)
        return netlink.has_address(spec.interface, spec.address)

    def noted(self, spec: IPSpec, present: bool) -> None:
        """This kit added (or deleted) the VIP: the in-memory copy knows at once."""
        if self.host is not None:
            self.host.noted(spec.interface, spec.cidr, present)

    def neighbour_addresses(self, mac: str) -> list[IPAddress]:
        """The addresses the host's neighbour tables give `mac` (whose is a MAC?)."""
        return netlink.neighbour_addresses(mac)

    def holders(self, specs: list[IPSpec]) -> dict[IPAddress, str]:
        """R6 for many addresses at once: those another host answers for, with its MAC."""
        found: dict[IPAddress, str] = {}
        wait = self.tunables.get("IP_UNIQUE_WAIT")
        probes = self.tunables.get("IP_UNIQUE_PROBES")
        by_interface: dict[str, list[IPAddress]] = {}
        for spec in specs:
            by_interface.setdefault(spec.interface, []).append(spec.address)
        for ifname, addresses in by_interface.items():
            found.update(packets.probe_many(ifname, addresses, wait=wait, probes=probes))
        return found

    # -- source address (R14) ------------------------------------------------

    def undo_sources(self, specs: list[IPSpec]) -> None:
        """Before these VIPs go: where a subnet route names one of them as its source,
        hand the route back to this server's own address in the subnet (the kernel
        would otherwise delete the route with the address). One route read per subnet."""
        leaving: dict[IPNetwork, set[IPAddress]] = {}
        interface: dict[IPNetwork, str] = {}
        for spec in specs:
            if spec.address.version == 4:
                leaving.setdefault(spec.network, set()).add(spec.address)
                interface[spec.network] = spec.interface
        for network, addresses in leaving.items():
            route = netlink.subnet_route(network)
            if route is None or route.prefsrc not in addresses:
                continue
            others = [
                a.ip
                for a in self.addresses_on(interface[network])
                if a.version == 4 and a.ip not in addresses and a.ip in network
            ]
            if others:
                netlink.set_route_source(network, interface[network], others[0])

    def source_effective(self, spec: IPSpec) -> bool:
        """True when traffic to the subnet currently leaves with this VIP as source."""
        route = netlink.subnet_route(spec.network)
        return route is not None and route.prefsrc == spec.address

    # -- the contract --------------------------------------------------------

    def restore(self, instance: Instance) -> KitResult:
        """R7: unique check, add, announce, source address, check once; undo on failure."""
        return self.restore_many([instance])[0]

    def restore_many(self, instances: list[Instance]) -> list[KitResult]:
        """`restore` for many VIPs at once (kits/ip/batch.py): each one's result."""
        return batch.restore_many(self, instances)

    def remove(self, instance: Instance) -> KitResult:
        """R8: give the subnet route back, delete the address; fine if already absent."""
        return self.remove_many([instance])[0]

    def remove_many(self, instances: list[Instance]) -> list[KitResult]:
        """`remove` for many VIPs at once: each one's result."""
        return batch.remove_many(self, instances)

    def announce_many(self, instances: list[Instance]) -> list[KitResult]:
        """Announce VIPs that are up here again (gratuitous ARP / unsolicited NA), so that
        neighbours whose caches still point elsewhere (a split brain just ended) follow."""
        return batch.announce_many(self, instances)

    def quick_check(self, instance: Instance) -> KitResult:
        """R9: address, link, reachability (pinging now); the first failing step and why."""
        spec = IPSpec.from_props(instance.props)
        if not spec.restore_recover:
            return KitResult.success("not checked (restore-and-recover disabled)")
        return self.check.run(instance.tag, spec)

    def reach_from_here(self, instance: Instance) -> KitResult:
        """Would this server find a responder on `instance`'s subnet if it held the VIP
        (check.HealthCheck.reach_from_here)? Pings now, from this server's own address."""
        return self.check.reach_from_here(self.spec(instance))

    def quick_check_many(self, instances: list[Instance]) -> list[KitResult]:
        """R9 for many VIPs, each subnet's reachability shared and never waited for."""
        return batch.check_many(self, instances)

    def time_limit(self, instance: Instance, action: str) -> float:
        """A check pings at most IP_PINGTRIES times IP_PINGTIME, twice (saved responder, then
        broadcast); a bring-up adds the unique check and netlink work."""
        ping = self.tunables.get("IP_PINGTIME") * (self.tunables.get("IP_PINGTRIES") + 1)
        check = ping + 5.0
        bring_up = self.tunables.get("IP_UNIQUE_WAIT") + check + 5.0
        return {"restore": bring_up, "recover": bring_up, "quick_check": check}.get(action, 10.0)

    def probe(self, instance: Instance) -> bool:
        """True when the address is configured here (on any interface)."""
        return self.probe_many([instance])[0]

    def probe_many(self, instances: list[Instance]) -> list[bool]:
        """`probe` for many VIPs: one look at this server's addresses."""
        here = self.own_addresses()
        return [self.spec(i).address in here for i in instances]

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
            details=result.details,  # nobody answering on the subnet, say
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
        "broadcast_ping": "yes" if spec.broadcast_ping else "no",
    }
