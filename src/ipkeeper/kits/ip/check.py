"""The IP resource's health check (R9), step by step, stopping at the first failure.

1. address: the VIP is configured on its interface;
2. link: the interface is up with carrier (unless IP_NOLINKCHECK=1);
3. reachability: the ping list (every address at once, any answer passes), or
   else a broadcast ping from the VIP (IPv6: all-nodes multicast) that some
   other host must answer (unless NOBCASTPING=1). The first broadcast
   responder is remembered and pinged directly first next time (unless
   IP_NOSAVEREPLY=1), falling back to broadcast when it stops answering.

Reachability belongs to a (server, subnet) pair, as the ping list does
(R13): every VIP of one subnet on one interface shares one ping per
CHECK_INTERVAL (`Reachability`), so a thousand VIPs in a subnet cost one
ping a second, not a thousand. With the host's addresses and links kept in
memory (netlink.HostNet), the first two steps are lookups: `check_many`
checks any number of VIPs in microseconds each and never waits on a ping.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from ipkeeper.config.tunables import Tunables
from ipkeeper.kits.ip import netlink, packets
from ipkeeper.kits.ip.params import IPAddress, IPNetwork, IPSpec
from ipkeeper.model.states import KitResult, Outcome
from ipkeeper.threads import name_this_thread

PingLists = Callable[[IPSpec], Sequence[IPAddress]]
_NOT_CHECKED = KitResult(Outcome.FAILED_LOCAL, "not checked", step="address")
# subnet, interface, ping list, broadcast ping allowed
SubnetKey = tuple[IPNetwork, str, tuple[IPAddress, ...], bool]


def _fail(step: str, reason: str, **details: object) -> KitResult:
    return KitResult(Outcome.FAILED_LOCAL, f"{step}: {reason}", step=step, details=dict(details))


def _nobody(spec: IPSpec) -> dict[str, object]:
    """The details of a reachability failure where every ping left and nobody answered:
    a fact about the subnet as seen from here, not about the VIP (engine/noresponder.py)."""
    return {"no_responder": True, "subnet": str(spec.network)}


@dataclass(frozen=True)
class _Answer:
    """The last completed reachability test of a subnet, and when it ended (monotonic)."""

    result: KitResult
    at: float


class Reachability:
    """Step 3 of the check, shared per subnet: see the module docstring."""

    def __init__(
        self,
        tunables: Tunables,
        ping_lists: PingLists,
        own_addresses: Callable[[], set[IPAddress]],
    ) -> None:
        self.tunables = tunables
        self.ping_lists = ping_lists
        self.own_addresses = own_addresses
        self._lock = threading.Lock()
        self._answers: dict[SubnetKey, _Answer] = {}
        self._running: set[SubnetKey] = set()
        self._saved: dict[tuple[IPNetwork, str], IPAddress] = {}
        self._pool: ThreadPoolExecutor | None = None
        self.pings = 0  # tests run (each one ping round or more)

    def _key(self, spec: IPSpec) -> tuple[SubnetKey, list[IPAddress]]:
        listed = [a for a in self.ping_lists(spec) if a.version == spec.address.version]
        return (spec.network, spec.interface, tuple(listed), spec.broadcast_ping), listed

    def saved_responder(self, spec: IPSpec) -> IPAddress | None:
        """The remembered broadcast responder of `spec`'s subnet, if any."""
        with self._lock:
            return self._saved.get((spec.network, spec.interface))

    def test(self, spec: IPSpec) -> KitResult:
        """Ping now from `spec`'s address (blocking); the answer is shared with its subnet."""
        key, listed = self._key(spec)
        result = self._test(spec, listed)
        with self._lock:
            self._answers[key] = _Answer(result, time.monotonic())
        return result

    def shared(self, spec: IPSpec, interval: float) -> KitResult:
        """The subnet's latest answer, without waiting: a new ping starts in the background
        when the last is older than `interval`. An answer older than a full ping's time
        more is not trusted (the pinging has stopped: that is a failure)."""
        key, listed = self._key(spec)
        now = time.monotonic()
        with self._lock:
            answer = self._answers.get(key)
            due = answer is None or now - answer.at >= interval
            if due and key not in self._running:
                self._running.add(key)
                self._executor().submit(self._background, key, spec, listed)
        if answer is None:
            return KitResult.success("reachability: first test of the subnet under way")
        age = now - answer.at
        limit = interval + self._worst_case() + 2.0
        if age > limit:
            return _fail("reachability", f"no test of {spec.network} completed for {age:.0f}s")
        return answer.result

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                max_workers=4, thread_name_prefix="ipk-reach", initializer=name_this_thread
            )
        return self._pool

    def _background(self, key: SubnetKey, spec: IPSpec, listed: list[IPAddress]) -> None:
        try:
            result = self._test(spec, listed)
            with self._lock:
                self._answers[key] = _Answer(result, time.monotonic())
        finally:
            with self._lock:
                self._running.discard(key)

    def _worst_case(self) -> float:
        ping = self.tunables.get("IP_PINGTIME")
        return ping * (self.tunables.get("IP_PINGTRIES") + 1)

    def _ping(
        self, targets: Sequence[IPAddress], spec: IPSpec, **kw: object
    ) -> packets.EchoReply | None:
        return packets.echo(
            targets,
            source=spec.address,
            ifname=spec.interface,
            timeout=self.tunables.get("IP_PINGTIME"),
            preload=self.tunables.get("IP_PINGPRELOAD"),
            **kw,  # type: ignore[arg-type]
        )

    def _test(self, spec: IPSpec, listed: list[IPAddress]) -> KitResult:
        self.pings += 1
        tries = self.tunables.get("IP_PINGTRIES")
        try:
            if listed:
                reply = self._ping(listed, spec, tries=tries)
                if reply:
                    return KitResult.success(
                        f"ping list: {reply.responder} answered",
                        details={"responder": str(reply.responder)},
                    )
                names = ", ".join(str(a) for a in listed)
                return _fail(
                    "reachability",
                    f"no address of the ping list answered ({names}; {tries} tries)",
                    **_nobody(spec),
                )
            if self.tunables.get("NOBCASTPING"):
                return KitResult.success("reachability not tested (NOBCASTPING=1, no ping list)")
            if not spec.broadcast_ping:
                return KitResult.success(
                    "reachability not tested (broadcast ping off for it, no ping list)"
                )
            return self._broadcast(spec, tries)
        except OSError as exc:
            return _fail("reachability", f"cannot ping from {spec.address}: {exc.strerror or exc}")

    def _broadcast(self, spec: IPSpec, tries: int) -> KitResult:
        save = not self.tunables.get("IP_NOSAVEREPLY")
        where = (spec.network, spec.interface)
        saved = self.saved_responder(spec) if save else None
        if saved is not None:
            reply = self._ping([saved], spec, tries=1)
            if reply:
                return KitResult.success(
                    f"saved responder {saved} answered",
                    details={"responder": str(saved), "saved": True},
                )
        if spec.address.version == 4:
            target: IPAddress = spec.network.broadcast_address
            if spec.network.prefixlen >= 31:
                return _fail(
                    "reachability", f"{spec.network} has no broadcast address; define a ping list"
                )
        else:
            target = ipaddress.IPv6Address("ff02::1")
        reply = self._ping([target], spec, tries=tries, ignore=self.own_addresses())
        if reply is None:
            return _fail(
                "reachability",
                f"nobody answered a ping of {target} from {spec.address} ({tries} tries)",
                **_nobody(spec),
            )
        if save:
            with self._lock:
                self._saved[where] = reply.responder
        return KitResult.success(
            f"{reply.responder} answered a ping of {target}",
            details={"responder": str(reply.responder), "saved": False},
        )


class HealthCheck:
    """Runs R9 for IP resources (see the module docstring)."""

    def __init__(
        self, tunables: Tunables, ping_lists: PingLists, host: netlink.HostNet | None = None
    ) -> None:
        self.tunables = tunables
        self.host = host
        self.reach = Reachability(tunables, ping_lists, self.own_addresses)

    def own_addresses(self) -> set[IPAddress]:
        """Every address of this server (the kernel's, or the in-memory copy's)."""
        return self.host.own_addresses() if self.host else netlink.own_addresses()

    def address_and_link(self, spec: IPSpec) -> tuple[bool, netlink.LinkState]:
        """Steps 1 and 2's facts: is the address there, and the link's state."""
        if self.host is not None:
            return self.host.has_address(spec.interface, spec.address), self.host.link_state(
                spec.interface
            )
        return netlink.address_and_link(spec.interface, spec.address)

    def local_steps(
        self,
        spec: IPSpec,
        link_check: bool | None = None,
        seen: tuple[bool, netlink.LinkState] | None = None,
    ) -> KitResult | None:
        """Steps 1 and 2: the failure, or None when both pass (`link_check`: the
        IP_NOLINKCHECK setting inverted, and `seen`: the facts, when the caller has
        them already)."""
        present, link = seen if seen is not None else self.address_and_link(spec)
        if not present:
            return _fail("address", f"{spec.address} is not configured on {spec.interface}")
        if link_check is None:
            link_check = not self.tunables.get("IP_NOLINKCHECK")
        return self._link_failure(spec, link) if link_check else None

    def run(self, tag: str, spec: IPSpec) -> KitResult:
        """Check `spec` now, pinging now; the result names the failed step and why."""
        start = time.monotonic()
        failed = self.local_steps(spec)
        if failed is not None:
            return failed
        result = self.reach.test(spec)
        return replace(result, timings={**result.timings, "check": time.monotonic() - start})

    def reach_from_here(self, spec: IPSpec) -> KitResult:
        """Would this server's check of `spec` find a responder on its subnet, were the VIP
        here? Asked by the holder before it hands a VIP over because nobody answers it
        (issue 11, item 8): the same test as step 3, from this server's own address in
        the subnet on the VIP's interface, with this server's ping list and settings. A
        server with no such address, or whose link is down, cannot tell (step "source"
        or "link", without `no_responder`); the answer is not shared with the checks."""
        _, link = self.address_and_link(spec)
        if not self.tunables.get("IP_NOLINKCHECK"):
            failed = self._link_failure(spec, link)
            if failed is not None:
                return failed
        if self.host is not None:
            configured = self.host.addresses_on(spec.interface)
        else:
            configured = netlink.addresses_on(spec.interface)
        sources = [a.ip for a in configured if a.ip in spec.network and a.ip != spec.address]
        if not sources:
            return _fail(
                "source", f"no address of {spec.network} on {spec.interface} here to test from"
            )
        source = replace(spec, address=sources[0])
        return self.reach._test(source, self.reach._key(source)[1])

    def run_many(self, specs: Sequence[IPSpec]) -> list[KitResult]:
        """Check every spec with the subnet's latest shared reachability; never waits.

        VIPs are taken a subnet and interface at a time: the link is looked at
        once, the addresses that are missing are found by one set difference,
        and every healthy VIP of the group gets the group's one result."""
        interval = self.tunables.get("CHECK_INTERVAL")
        link_check = not self.tunables.get("IP_NOLINKCHECK")
        groups: dict[tuple[IPNetwork, str, bool], list[int]] = {}
        for i, spec in enumerate(specs):
            groups.setdefault((spec.network, spec.interface, spec.broadcast_ping), []).append(i)
        results: list[KitResult] = [_NOT_CHECKED] * len(specs)
        for (_, ifname, _), members in groups.items():
            addresses = {specs[i].address for i in members}
            if self.host is not None:
                missing, link = self.host.missing(ifname, addresses)
            else:
                missing = {a for a in addresses if not netlink.has_address(ifname, a)}
                link = netlink.link_state(ifname)
            first = specs[members[0]]
            healthy = self._link_failure(first, link) if link_check else None
            if healthy is None:
                healthy = self.reach.shared(first, interval)
            for i in members:
                spec = specs[i]
                if spec.address in missing:
                    results[i] = _fail(
                        "address", f"{spec.address} is not configured on {spec.interface}"
                    )
                else:
                    results[i] = healthy
        return results

    @staticmethod
    def _link_failure(spec: IPSpec, link: netlink.LinkState) -> KitResult | None:
        if not link.exists:
            return _fail("link", f"{spec.interface} does not exist")
        if not link.admin_up:
            return _fail("link", f"{spec.interface} is administratively down")
        if not link.carrier:
            return _fail("link", f"{spec.interface} has no carrier (link down)")
        return None
