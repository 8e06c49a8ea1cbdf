"""The IP resource's health check (R9), step by step, stopping at the first failure.

1. address: the VIP is configured on its interface;
2. link: the interface is up with carrier (unless IP_NOLINKCHECK=1);
3. reachability: the ping list (every address at once, any answer passes), or
   else a broadcast ping from the VIP (IPv6: all-nodes multicast) that some
   other host must answer (unless NOBCASTPING=1). The first broadcast
   responder is remembered and pinged directly first next time (unless
   IP_NOSAVEREPLY=1), falling back to broadcast when it stops answering.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable, Sequence

from ipkeeper.config.tunables import Tunables
from ipkeeper.kits.ip import netlink, packets
from ipkeeper.kits.ip.params import IPAddress, IPSpec
from ipkeeper.model.states import KitResult, Outcome

PingLists = Callable[[IPSpec], Sequence[IPAddress]]


def _fail(step: str, reason: str, **details: object) -> KitResult:
    return KitResult(Outcome.FAILED_LOCAL, f"{step}: {reason}", step=step, details=dict(details))


class HealthCheck:
    """Runs R9 for IP resources; remembers broadcast responders per resource tag."""

    def __init__(self, tunables: Tunables, ping_lists: PingLists) -> None:
        self.tunables = tunables
        self.ping_lists = ping_lists
        self._saved: dict[str, IPAddress] = {}
        self._lock = threading.Lock()

    def saved_responder(self, tag: str) -> IPAddress | None:
        """The remembered broadcast responder for `tag`, if any."""
        with self._lock:
            return self._saved.get(tag)

    def forget(self, tag: str) -> None:
        """Drop the remembered responder (the resource went out of service)."""
        with self._lock:
            self._saved.pop(tag, None)

    def run(self, tag: str, spec: IPSpec) -> KitResult:
        """Check `spec` now; the result names the failed step and why."""
        start = time.monotonic()
        present, link = netlink.address_and_link(spec.interface, spec.address)
        if not present:
            return _fail("address", f"{spec.address} is not configured on {spec.interface}")
        if not self.tunables.get("IP_NOLINKCHECK"):
            if not link.exists:
                return _fail("link", f"{spec.interface} does not exist")
            if not link.admin_up:
                return _fail("link", f"{spec.interface} is administratively down")
            if not link.carrier:
                return _fail("link", f"{spec.interface} has no carrier (link down)")
        result = self._reachability(tag, spec)
        result.timings["check"] = time.monotonic() - start
        return result

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

    def _reachability(self, tag: str, spec: IPSpec) -> KitResult:
        tries = self.tunables.get("IP_PINGTRIES")
        try:
            listed = [a for a in self.ping_lists(spec) if a.version == spec.address.version]
            if listed:
                reply = self._ping(listed, spec, tries=tries)
                if reply:
                    return KitResult.success(
                        f"ping list: {reply.responder} answered",
                        details={"responder": str(reply.responder)},
                    )
                names = ", ".join(str(a) for a in listed)
                return _fail(
                    "reachability", f"no address of the ping list answered ({names}; {tries} tries)"
                )
            if self.tunables.get("NOBCASTPING"):
                return KitResult.success("reachability not tested (NOBCASTPING=1, no ping list)")
            return self._broadcast(tag, spec, tries)
        except OSError as exc:
            return _fail("reachability", f"cannot ping from {spec.address}: {exc.strerror or exc}")

    def _broadcast(self, tag: str, spec: IPSpec, tries: int) -> KitResult:
        save = not self.tunables.get("IP_NOSAVEREPLY")
        saved = self.saved_responder(tag) if save else None
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
        reply = self._ping([target], spec, tries=tries, ignore=netlink.own_addresses())
        if reply is None:
            return _fail(
                "reachability",
                f"nobody answered a ping of {target} from {spec.address} ({tries} tries)",
            )
        if save:
            with self._lock:
                self._saved[tag] = reply.responder
        return KitResult.success(
            f"{reply.responder} answered a ping of {target}",
            details={"responder": str(reply.responder), "saved": False},
        )
