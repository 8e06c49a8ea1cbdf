"""Every kernel change the IP kit makes, through pyroute2 (the only importer of it).

Each function opens its own netlink socket (well under a millisecond), so it
acts in the network namespace of the calling thread and shares no state
between threads. Adding an address that is there and deleting one that is not
both succeed (EEXIST, EADDRNOTAVAIL, ENODEV), so callers can be idempotent.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import select
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from ipkeeper.kits.ip import rtnl
from ipkeeper.kits.ip.interfaces import InterfaceInfo
from ipkeeper.kits.ip.params import IPAddress, IPInterface, IPNetwork
from ipkeeper.threads import name_this_thread

IFF_UP = 0x1
IFF_LOOPBACK = 0x8
IFF_LOWER_UP = 0x10000
IFA_F_SECONDARY = 0x01
IFA_F_NODAD = 0x02
RT_TABLE_MAIN = 254

log = logging.getLogger("ipkeeper.netlink")


class NetlinkFailure(Exception):
    """A netlink request the kernel refused, with its reason."""


def _family(version: int) -> int:
    return socket.AF_INET if version == 4 else socket.AF_INET6


def interfaces() -> list[InterfaceInfo]:
    """Every interface with its state and addresses."""
    with IPRoute() as ipr:
        links = ipr.link("dump")
        addrs = ipr.addr("dump")
    by_index: dict[int, list[IPInterface]] = {}
    for a in addrs:
        iface = ipaddress.ip_interface(f"{a.get('address')}/{a['prefixlen']}")
        by_index.setdefault(a["index"], []).append(iface)
    result = []
    for link in links:
        flags = link["flags"]
        result.append(
            InterfaceInfo(
                name=link.get("ifname"),
                index=link["index"],
                admin_up=bool(flags & IFF_UP),
                carrier=bool(flags & IFF_LOWER_UP),
                loopback=bool(flags & IFF_LOOPBACK),
                addresses=tuple(by_index.get(link["index"], ())),
            )
        )
    return result


@dataclass(frozen=True)
class LinkState:
    """Whether an interface exists, is administratively up, and has carrier."""

    exists: bool
    admin_up: bool = False
    carrier: bool = False


def link_state(ifname: str) -> LinkState:
    """The state of `ifname` now."""
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=ifname)
        if not found:
            return LinkState(False)
        flags = ipr.link("get", index=found[0])[0]["flags"]
    return LinkState(True, bool(flags & IFF_UP), bool(flags & IFF_LOWER_UP))


def address_and_link(ifname: str, address: IPAddress) -> tuple[bool, LinkState]:
    """Whether `address` is on `ifname`, and the link's state, in one netlink session
    (the health check's first two steps, at half the cost of asking separately)."""
    with IPRoute() as ipr:
        try:
            link = ipr.link("get", ifname=ifname)[0]
        except NetlinkError:
            return False, LinkState(False)
        flags = link["flags"]
        state = LinkState(True, bool(flags & IFF_UP), bool(flags & IFF_LOWER_UP))
        present = any(
            ipaddress.ip_address(a.get("address")) == address
            for a in ipr.addr("dump", index=link["index"])
        )
    return present, state


def _index(ipr: IPRoute, ifname: str) -> int:
    found = ipr.link_lookup(ifname=ifname)
    if not found:
        raise NetlinkFailure(f"{ifname} does not exist")
    return int(found[0])


def addresses_on(ifname: str) -> list[IPInterface]:
    """Addresses configured on `ifname` (empty if it does not exist)."""
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=ifname)
        if not found:
            return []
        return [
            ipaddress.ip_interface(f"{a.get('address')}/{a['prefixlen']}")
            for a in ipr.addr("dump", index=found[0])
        ]


def has_address(ifname: str, address: IPAddress) -> bool:
    """True when `address` is configured on `ifname` (any prefix)."""
    return any(a.ip == address for a in addresses_on(ifname))


def where_is(address: IPAddress) -> tuple[str, int] | None:
    """(interface, prefix) where `address` is configured on this server, or None."""
    for info in interfaces():
        for a in info.addresses:
            if a.ip == address:
                return info.name, a.network.prefixlen
    return None


def own_addresses() -> set[IPAddress]:
    """Every address configured on this server."""
    return {a.ip for info in interfaces() for a in info.addresses}


def add_address(ifname: str, iface: IPInterface) -> None:
    """Add `iface` to `ifname` (a secondary when the subnet is already there); idempotent.

    IPv6 addresses are added without the kernel's own DAD: the kit has already
    checked uniqueness and the address must be usable at once.
    """
    with IPRoute() as ipr:
        index = _index(ipr, ifname)
        try:
            ipr.addr(
                "add",
                index=index,
                address=str(iface.ip),
                prefixlen=iface.network.prefixlen,
                flags=IFA_F_NODAD if iface.version == 6 else 0,
            )
        except NetlinkError as exc:
            if exc.code != errno.EEXIST:
                raise NetlinkFailure(f"adding {iface} to {ifname}: {exc.args[-1]}") from exc


def delete_address(ifname: str, iface: IPInterface) -> None:
    """Remove `iface` from `ifname`; succeeds when it is already absent."""
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=ifname)
        if not found:
            return
        try:
            ipr.addr(
                "del", index=found[0], address=str(iface.ip), prefixlen=iface.network.prefixlen
            )
        except NetlinkError as exc:
            if exc.code not in (errno.EADDRNOTAVAIL, errno.ENODEV, errno.ENOENT):
                raise NetlinkFailure(f"removing {iface} from {ifname}: {exc.args[-1]}") from exc


@dataclass(frozen=True)
class SubnetRoute:
    """The kernel's route to a connected subnet: its device and preferred source."""

    network: IPNetwork
    ifindex: int
    prefsrc: IPAddress | None


def subnet_route(network: IPNetwork) -> SubnetRoute | None:
    """The main-table route to exactly `network`, or None (one raw dump of the
    family's routes: this runs before every take-down)."""
    for route in rtnl.dump(rtnl.RTM_GETROUTE, _family(network.version)):
        if (
            isinstance(route, rtnl.RouteMessage)
            and route.table == RT_TABLE_MAIN
            and route.destination is not None
            and route.destination.network == network
            and route.destination.ip == network.network_address
            and route.oif is not None
        ):
            return SubnetRoute(
                network, route.oif, route.prefsrc.ip if route.prefsrc is not None else None
            )
    return None


def set_route_source(network: IPNetwork, ifname: str, source: IPAddress) -> None:
    """Make traffic to `network` leave from `source` (R14): replace the subnet route."""
    with IPRoute() as ipr:
        try:
            ipr.route(
                "replace",
                dst=str(network),
                oif=_index(ipr, ifname),
                prefsrc=str(source),
                proto="kernel",
                scope="link",
                table=RT_TABLE_MAIN,
            )
        except NetlinkError as exc:
            raise NetlinkFailure(f"setting source {source} for {network}: {exc.args[-1]}") from exc


RTMGRP_LINK = 0x1
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV6_IFADDR = 0x100


def change_socket() -> socket.socket:
    """A non-blocking netlink socket that becomes readable whenever a link or an
    address changes on this server, so a lost carrier or a deleted address is
    checked at once instead of at the next CHECK_INTERVAL."""
    sock = socket.socket(
        socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK, 0
    )  # NETLINK_ROUTE
    sock.bind((0, RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR))
    return sock


def promote_secondaries(ifname: str) -> bool:
    """Make sure that deleting the primary address of a subnet on `ifname` promotes a
    secondary instead of deleting them all (net.ipv4.conf.IF.promote_secondaries=1).

    Without it, in a subnet where the server has no address of its own, the first
    VIP brought up is the primary, and taking it down silently takes every other
    VIP of that subnet with it. True when the setting had to be changed."""
    path = f"/proc/sys/net/ipv4/conf/{ifname}/promote_secondaries"
    try:
        with open(path) as current:
            if current.read().strip() == "1":
                return False
        with open(path, "w") as setting:
            setting.write("1")
    except OSError as exc:
        raise NetlinkFailure(f"cannot set promote_secondaries on {ifname}: {exc}") from exc
    return True


# -- many addresses at once ----------------------------------------------------------
#
# Bringing a thousand VIPs up one `ipr.addr("add")` at a time costs a round
# trip and a parse each (about a second here). These send the requests in
# batches on one netlink socket, encoded by rtnl (struct, not pyroute2),
# and read the kernel's acknowledgements back by sequence number.

BATCH = 200


def _answers(sock: socket.socket, last: int) -> dict[int, int]:
    """The kernel's refusals (sequence -> errno) up to the acknowledgement of `last`.

    Only the last request of a batch asks for an acknowledgement: the kernel
    answers requests in order and reports every refusal whether asked or not,
    so one read covers the batch instead of one per address."""
    errors: dict[int, int] = {}
    while True:
        data = sock.recv(1 << 20)
        for kind, _flags, seq, start, _end in rtnl.messages(data):
            if kind == rtnl.NLMSG_ERROR:
                errors[seq] = rtnl.error_code(data, start)
                if seq == last:
                    return errors


def _batch(kind: int, items: Sequence[tuple[str, IPInterface]]) -> list[str | None]:
    """Send `kind` for every (interface, address); per item None or the kernel's refusal."""
    results: list[str | None] = [None] * len(items)
    indexes: dict[str, int | None] = {}
    for ifname, _ in items:
        if ifname not in indexes:
            try:
                indexes[ifname] = socket.if_nametoindex(ifname)
            except OSError:
                indexes[ifname] = None
    fine = (
        (0, errno.EEXIST)
        if kind == rtnl.RTM_NEWADDR
        else (0, errno.EADDRNOTAVAIL, errno.ENODEV, errno.ENOENT)
    )
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0) as sock:  # NETLINK_ROUTE
        sock.bind((0, 0))
        sock.settimeout(5.0)
        for start in range(0, len(items), BATCH):
            chunk = [
                (start + offset + 1, index, iface)
                for offset, (ifname, iface) in enumerate(items[start : start + BATCH])
                if (index := indexes[ifname]) is not None
            ]
            for offset, (ifname, _iface) in enumerate(items[start : start + BATCH]):
                if indexes[ifname] is None:
                    results[start + offset] = f"{ifname} does not exist"
            if not chunk:
                continue
            last = chunk[-1][0]
            sock.send(
                b"".join(
                    rtnl.address_request(kind, index, iface, seq, ack=seq == last)
                    for seq, index, iface in chunk
                )
            )
            for seq, code in _answers(sock, last).items():
                if code not in fine:
                    results[seq - 1] = os.strerror(code)
    return results


def add_addresses(items: Sequence[tuple[str, IPInterface]]) -> list[str | None]:
    """Add every (interface, address) (secondaries where the subnet is there); per item
    None, or why the kernel refused it. Already present counts as added."""
    return _batch(rtnl.RTM_NEWADDR, items)


def delete_addresses(items: Sequence[tuple[str, IPInterface]]) -> list[str | None]:
    """Delete every (interface, address); per item None, or why the kernel refused it.
    Already absent counts as deleted.

    Deleted in the reverse of the kernel's order on each interface, so that a
    subnet's primary address goes last: deleting a primary first makes the
    kernel promote a secondary and re-add the routes of every other one, which
    is quadratic (4.4 s for 1,000 VIPs of one subnet, against 0.16 s this way).
    """
    order = _deletion_order(items)
    done = _batch(rtnl.RTM_DELADDR, [items[i] for i in order])
    results: list[str | None] = [None] * len(items)
    for position, i in enumerate(order):
        results[i] = done[position]
    return results


def _deletion_order(items: Sequence[tuple[str, IPInterface]]) -> list[int]:
    """Indexes of `items`, the newest address of each interface first (one dump)."""
    if len(items) < 2:
        return list(range(len(items)))
    names = {
        m.index: m.name for m in rtnl.dump(rtnl.RTM_GETLINK) if isinstance(m, rtnl.LinkMessage)
    }
    rank: dict[tuple[str | None, IPInterface], int] = {}
    for position, m in enumerate(rtnl.dump(rtnl.RTM_GETADDR)):
        if isinstance(m, rtnl.AddrMessage):
            rank[(names.get(m.index), m.iface)] = position
    return sorted(range(len(items)), key=lambda i: -rank.get(items[i], -1))


def _counts(addresses: Iterable[IPAddress]) -> dict[IPAddress, int]:
    counts: dict[IPAddress, int] = {}
    for address in addresses:
        counts[address] = counts.get(address, 0) + 1
    return counts


# -- the host's links and addresses, in memory ----------------------------------------


@dataclass(frozen=True)
class HostChange:
    """A link or an address changed on this host (for the checks to look at once)."""

    ifname: str
    address: IPAddress | None  # None: the link itself changed
    present: bool


class HostNet:
    """This host's links and addresses, kept in memory from netlink notifications.

    A thread of its own reads the notifications (links, IPv4 and IPv6
    addresses) and applies them; every `resync` seconds, and at once when the
    kernel says notifications were lost (ENOBUFS), it reads everything again.
    So the address and link steps of a health check are dictionary lookups,
    whatever the number of addresses on the host. Changes this process makes
    itself are applied when they are acknowledged (`noted`), before the
    notification arrives. `listeners` are told of every change, from the
    thread.
    """

    def __init__(self, resync: float = 120.0) -> None:
        self.resync = resync
        self.listeners: list[Callable[[list[HostChange]], None]] = []
        self._lock = threading.Lock()
        self._links: dict[int, tuple[str, int]] = {}  # index -> (name, flags)
        self._index: dict[str, int] = {}
        self._addrs: dict[int, set[IPInterface]] = {}
        self._where: dict[IPAddress, set[int]] = {}  # address -> interfaces that carry it
        # interface -> the addresses it carries, each with its number of prefixes there
        self._ips: dict[int, dict[IPAddress, int]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self.synced_at = 0.0
        self.resyncs = 0

    def start(self) -> HostNet:
        """Subscribe, read everything once, and start the thread (in this thread's namespace)."""
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        sock.bind((0, RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR))
        sock.settimeout(1.0)
        self._sock = sock
        # The first read happens on the thread too (pyroute2 does not run on a
        # thread whose asyncio loop is running); the caller waits for it.
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="hostnet", daemon=True
        )
        self._thread.start()
        if not ready.wait(10.0):
            raise NetlinkFailure("could not read this host's links and addresses within 10 s")
        return self

    def stop(self) -> None:
        """Stop the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self._sock is not None:
            self._sock.close()

    # -- reading --------------------------------------------------------------

    def link_state(self, ifname: str) -> LinkState:
        """Whether `ifname` exists, is up and has carrier."""
        with self._lock:
            index = self._index.get(ifname)
            if index is None:
                return LinkState(False)
            flags = self._links[index][1]
        return LinkState(True, bool(flags & IFF_UP), bool(flags & IFF_LOWER_UP))

    def has_address(self, ifname: str, address: IPAddress) -> bool:
        """True when `address` is configured on `ifname` (any prefix)."""
        with self._lock:
            index = self._index.get(ifname)
            return index is not None and index in self._where.get(address, ())

    def lookup(self, wanted: Sequence[tuple[str, IPAddress]]) -> list[tuple[bool, LinkState]]:
        """For each (interface, address): is the address there, and the link's state
        (one lock for the whole batch)."""
        found = []
        missing = LinkState(False)
        states: dict[str, tuple[int | None, LinkState]] = {}
        with self._lock:
            where, index_of, links = self._where, self._index, self._links
            for ifname, address in wanted:
                known = states.get(ifname)
                if known is None:
                    index = index_of.get(ifname)
                    if index is None:
                        known = (None, missing)
                    else:
                        flags = links[index][1]
                        up, carrier = bool(flags & IFF_UP), bool(flags & IFF_LOWER_UP)
                        known = (index, LinkState(True, up, carrier))
                    states[ifname] = known
                index, link = known
                found.append((index is not None and index in where.get(address, ()), link))
        return found

    def missing(self, ifname: str, addresses: set[IPAddress]) -> tuple[set[IPAddress], LinkState]:
        """Which of `addresses` are not configured on `ifname`, and the link's state."""
        with self._lock:
            index = self._index.get(ifname)
            if index is None:
                return set(addresses), LinkState(False)
            flags = self._links[index][1]
            carried = self._ips.get(index, {})
            found = {a for a in addresses if a not in carried}
        return found, LinkState(True, bool(flags & IFF_UP), bool(flags & IFF_LOWER_UP))

    def interfaces(self) -> list[InterfaceInfo]:
        """Every interface with its state and addresses."""
        with self._lock:
            return [
                InterfaceInfo(
                    name=name,
                    index=index,
                    admin_up=bool(flags & IFF_UP),
                    carrier=bool(flags & IFF_LOWER_UP),
                    loopback=bool(flags & IFF_LOOPBACK),
                    addresses=tuple(sorted(self._addrs.get(index, ()), key=str)),
                )
                for index, (name, flags) in sorted(self._links.items())
            ]

    def own_addresses(self) -> set[IPAddress]:
        """Every address configured here."""
        with self._lock:
            return {a.ip for addrs in self._addrs.values() for a in addrs}

    # -- changes this process made ---------------------------------------------

    def noted(self, ifname: str, iface: IPInterface, present: bool) -> None:
        """This process added (or deleted) `iface` on `ifname`, and the kernel said yes."""
        with self._lock:
            index = self._index.get(ifname)
            if index is None:
                return
            self._note(index, iface, present)

    def _note(self, index: int, iface: IPInterface, present: bool) -> None:
        addrs = self._addrs.setdefault(index, set())
        if present == (iface in addrs):
            return  # told twice (by this process, then by the kernel's notification)
        ips = self._ips.setdefault(index, {})
        if present:
            addrs.add(iface)
            self._where.setdefault(iface.ip, set()).add(index)
            ips[iface.ip] = ips.get(iface.ip, 0) + 1
            return
        addrs.discard(iface)
        ips[iface.ip] -= 1
        if ips[iface.ip] == 0:
            del ips[iface.ip]
            where = self._where.get(iface.ip, set())
            where.discard(index)
            if not where:
                self._where.pop(iface.ip, None)

    def addresses_on(self, ifname: str) -> list[IPInterface]:
        """The addresses on `ifname` (empty if it does not exist)."""
        with self._lock:
            index = self._index.get(ifname)
            return list(self._addrs.get(index, ())) if index is not None else []

    # -- the thread -----------------------------------------------------------

    def _full_read(self) -> None:
        table = {
            m.index: (str(m.name), m.flags)
            for m in rtnl.dump(rtnl.RTM_GETLINK)
            if isinstance(m, rtnl.LinkMessage)
        }
        by_index: dict[int, set[IPInterface]] = {}
        for m in rtnl.dump(rtnl.RTM_GETADDR):
            if isinstance(m, rtnl.AddrMessage):
                by_index.setdefault(m.index, set()).add(m.iface)
        where: dict[IPAddress, set[int]] = {}
        for index, found in by_index.items():
            for iface in found:
                where.setdefault(iface.ip, set()).add(index)
        with self._lock:
            self._links = table
            self._index = {name: index for index, (name, _) in table.items()}
            self._addrs = by_index
            self._where = where
            self._ips = {index: _counts(a.ip for a in found) for index, found in by_index.items()}
        self.synced_at = time.monotonic()
        self.resyncs += 1

    def _run(self, ready: threading.Event) -> None:
        name_this_thread("ipk-hostnet")
        assert self._sock is not None
        self._resync_safely()
        ready.set()
        while not self._stop.is_set():
            if time.monotonic() - self.synced_at >= self.resync:
                self._resync_safely()
            try:
                data = self._sock.recv(1 << 20)
            except TimeoutError:
                continue
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:  # notifications were lost
                    self._resync_safely()
                    continue
                if self._stop.is_set():
                    return
                time.sleep(0.1)
                continue
            changes = self._apply([m for chunk in self._drain(data) for m in rtnl.decode(chunk)])
            if changes:
                for listener in self.listeners:
                    try:
                        listener(changes)
                    except Exception:  # a listener's failure must not stop the cache
                        log.exception("hostnet listener failed")

    def _drain(self, first: bytes) -> list[bytes]:
        """`first` and whatever else is already queued: a thousand changes are
        applied, and told to the listeners, once rather than a thousand times."""
        assert self._sock is not None
        chunks = [first]
        # Only what is queued now: the socket has a timeout, under which CPython would
        # wait for more even with MSG_DONTWAIT, so look first without waiting.
        while len(chunks) < 10_000 and select.select([self._sock], [], [], 0)[0]:
            try:
                chunks.append(self._sock.recv(1 << 20, socket.MSG_DONTWAIT))
            except (BlockingIOError, InterruptedError, TimeoutError):
                break
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:  # lost some: read everything at the next turn
                    self.synced_at = 0.0
                break
        return chunks

    def _resync_safely(self) -> None:
        try:
            self._full_read()
        except Exception:
            log.exception("hostnet: full read failed; trying again later")
            self.synced_at = time.monotonic()

    def _apply(self, messages: list[rtnl.Message]) -> list[HostChange]:
        changes: list[HostChange] = []
        with self._lock:
            for msg in messages:
                if isinstance(msg, rtnl.RouteMessage):
                    continue
                index = msg.index
                if isinstance(msg, rtnl.LinkMessage):
                    name = msg.name or self._links.get(index, ("?", 0))[0]
                    if msg.kind == rtnl.RTM_NEWLINK:
                        old = self._links.get(index)
                        self._links[index] = (name, msg.flags)
                        self._index[name] = index
                        if old is None or old[1] != msg.flags:
                            changes.append(HostChange(name, None, True))
                    else:
                        self._links.pop(index, None)
                        self._index.pop(name, None)
                        for iface in list(self._addrs.get(index, ())):
                            self._note(index, iface, False)
                        self._addrs.pop(index, None)
                        self._ips.pop(index, None)
                        changes.append(HostChange(name, None, False))
                elif isinstance(msg, rtnl.AddrMessage):
                    name = self._links.get(index, ("?", 0))[0]
                    present = msg.kind == rtnl.RTM_NEWADDR
                    self._note(index, msg.iface, present)
                    changes.append(HostChange(name, msg.iface.ip, present))
        return changes


def neighbour_addresses(mac: str) -> list[IPAddress]:
    """The addresses this host's neighbour tables map to `mac` (to say whose a MAC is)."""
    found: list[IPAddress] = []
    with IPRoute() as ipr:
        for family in (socket.AF_INET, socket.AF_INET6):
            for entry in ipr.get_neighbours(family=family):
                if str(entry.get("lladdr") or "").lower() == mac.lower() and entry.get("dst"):
                    found.append(ipaddress.ip_address(str(entry.get("dst"))))
    return found
