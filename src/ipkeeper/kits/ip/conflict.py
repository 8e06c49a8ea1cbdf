"""In-service address conflict detection and defence (RFC 5227 section 2.4).

While this server holds a VIP, another host may start using it too: a host
configured by hand with the same address, a rogue, a server of this cluster
in a split brain. RFC 5227 section 2.4 calls an ARP packet whose *sender IP*
is one of our addresses and whose *sender MAC* is not ours a conflicting ARP
packet. We take the choice its paragraph (c) allows for addresses that must
stay where they are: keep the address and defend it indefinitely, with one
ARP announcement at most once per DEFEND_INTERVAL (10 s), and tell the
administrator. When no conflicting packet has come for DEFEND_INTERVAL the
conflict is over: the address is announced again (the neighbours' caches,
which the other host turned its way, come back), and said so.

One listener per interface that carries watched addresses, not one per VIP:
an AF_PACKET socket for ARP with a classic BPF program attached, so that the
kernel keeps from user space every frame whose ARP sender MAC is this
interface's own (our own announcements and probes) or whose sender IP is
0.0.0.0 (others' RFC 5227 probes, as a peer's unique-address check sends:
never a conflict for a holder). What reaches user space costs one dict
lookup of its sender IP. Requests from others *for* our VIP carry their own
sender IP and are not conflicts.

IPv6 the same way, on a second packet socket of the interface (for IPv6,
only when it has IPv6 VIPs): a neighbour advertisement whose target is a
VIP held here, or a neighbour solicitation whose source is one, from
another MAC (Ethernet source) is a conflict; the filter passes only
ICMPv6 neighbour solicitations and advertisements (no extension headers)
from other MACs, so other IPv6 traffic never leaves the kernel. The defence
is one unsolicited neighbour advertisement with the override flag.

`Conflicts` is the pure state machine (time passed in); `classify` the pure
frame test; `ConflictWatch` the thread (`ipk-conflict`) that owns the
sockets, so that neither detection nor defence waits on the daemon's main
loop. What it finds it reports through `on_report` (from its thread).

Not seen (README's known limits): a host that takes the address without
ever sending ARP with it as sender (only answering unicast requests, or
replying to ARP for a switch that does not flood them; IPv6: answering
only solicited, unicast advertisements).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ipkeeper.config.tunables import Tunables
from ipkeeper.kits.ip import packets
from ipkeeper.kits.ip.params import IPAddress
from ipkeeper.threads import name_this_thread

log = logging.getLogger("ipkeeper.ipkit")

SO_ATTACH_FILTER = 26
Key = tuple[str, IPAddress]  # (interface, address)
Clock = Callable[[], float]
StillHeld = Callable[[str, IPAddress], bool]
RECHECK = 5.0  # seconds between looks at IP_CONFLICT_DETECT and the interfaces' sockets
DRAIN = 256  # frames read from one socket per wake-up at most


# -- the pure parts ----------------------------------------------------------------


def classify(
    frame: bytes, watched: dict[bytes, IPAddress], own_mac: bytes
) -> tuple[IPAddress, str] | None:
    """(address, MAC) when `frame` is a conflicting ARP packet for one of `watched`
    (packed address -> address): an ARP request or reply whose sender IP is a
    watched address and whose sender MAC is not `own_mac`. None otherwise (other
    frames, our own, probes with sender 0.0.0.0, others asking for our address).
    IPv6 frames go to `classify6`."""
    if frame[12:14] == b"\x86\xdd":
        return classify6(frame, watched, own_mac)
    if len(frame) < 42 or frame[12:14] != b"\x08\x06":
        return None
    if frame[14:22] not in (_ARP_ETH_IPV4 + b"\x00\x01", _ARP_ETH_IPV4 + b"\x00\x02"):
        return None
    sender_mac = frame[22:28]
    if sender_mac == own_mac:
        return None
    address = watched.get(frame[28:32])
    if address is None:
        return None
    return address, packets.mac_text(sender_mac)


_ARP_ETH_IPV4 = struct.pack("!HHBB", 1, 0x0800, 6, 4)


def classify6(
    frame: bytes, watched: dict[bytes, IPAddress], own_mac: bytes
) -> tuple[IPAddress, str] | None:
    """(address, MAC) when `frame` shows another MAC using a watched IPv6 address: a
    neighbour advertisement whose target is one, or a neighbour solicitation sent
    from one (a DAD solicitation comes from :: and is not). None otherwise."""
    if len(frame) < 78 or frame[12:14] != b"\x86\xdd" or frame[20] != 58:
        return None
    src_mac = frame[6:12]
    if src_mac == own_mac:
        return None
    kind = frame[54]
    if kind == packets.ND_NEIGHBOR_ADVERT:
        address = watched.get(frame[62:78])
    elif kind == packets.ND_NEIGHBOR_SOLICIT:
        address = watched.get(frame[22:38])
    else:
        return None
    if address is None or address.version != 6:
        return None
    return address, packets.mac_text(src_mac)


@dataclass
class Conflict:
    """One address's conflict: who else sends it, since when, and our last defence."""

    ifname: str
    address: IPAddress
    mac: str
    first: float  # the first conflicting frame (monotonic seconds)
    last: float  # the latest one
    defended: float | None = None  # when our last defensive announcement left
    frames: int = 1


@dataclass(frozen=True)
class Seen:
    """What one conflicting frame calls for: report a new conflict, defend now."""

    conflict: Conflict
    new: bool
    defend: bool


class Conflicts:
    """The conflicts in course, RFC 5227 section 2.4 (c): defend at most once per
    `interval`, and a conflict ends once no conflicting frame came for `interval`.

    Pure bookkeeping: the time is passed in (monotonic seconds)."""

    def __init__(self) -> None:
        self._open: dict[Key, Conflict] = {}

    def saw(self, key: Key, mac: str, now: float, interval: float) -> Seen:
        """A conflicting frame for `key` from `mac` arrived at `now`."""
        found = self._open.get(key)
        new = found is None
        if found is None:
            found = self._open[key] = Conflict(key[0], key[1], mac, now, now)
        else:
            found.last = max(found.last, now)
            found.frames += 1
            found.mac = mac  # the latest sender is the one to name
        defend = found.defended is None or now - found.defended >= interval
        if defend:
            found.defended = now
        return Seen(found, new, defend)

    def ended(self, now: float, interval: float) -> list[Conflict]:
        """The conflicts over at `now` (no frame for `interval`), forgotten as they go."""
        over = [c for c in self._open.values() if now - c.last >= interval]
        for c in over:
            del self._open[(c.ifname, c.address)]
        return over

    def next_end(self, interval: float) -> float | None:
        """When the first conflict in course would end if no frame came (None: none)."""
        return min((c.last + interval for c in self._open.values()), default=None)

    def drop(self, key: Key) -> Conflict | None:
        """Forget `key`'s conflict without ending it (the address left this server)."""
        return self._open.pop(key, None)

    def get(self, key: Key) -> Conflict | None:
        """The conflict of `key` in course, if any."""
        return self._open.get(key)

    def all(self) -> list[Conflict]:
        """Every conflict in course."""
        return list(self._open.values())


def bpf_not_from(own_mac: bytes) -> list[tuple[int, int, int, int]]:
    """A classic BPF program for an ARP packet socket: accept an ARP frame unless
    its sender MAC is `own_mac` or its sender IP is 0.0.0.0 (a probe)."""
    hi = int.from_bytes(own_mac[:4], "big")
    lo = int.from_bytes(own_mac[4:], "big")
    ld_h, ld_w, jeq, ret = 0x28, 0x20, 0x15, 0x06  # ldh/ld absolute, jeq #k, ret #k
    return [
        (ld_h, 0, 0, 12),  # 0: ethertype
        (jeq, 0, 7, 0x0806),  # 1: not ARP -> drop
        (ld_w, 0, 0, 22),  # 2: sender MAC, first four bytes
        (jeq, 0, 2, hi),  # 3: differs -> 6
        (ld_h, 0, 0, 26),  # 4: sender MAC, last two bytes
        (jeq, 3, 0, lo),  # 5: ours -> drop
        (ld_w, 0, 0, 28),  # 6: sender IP
        (jeq, 1, 0, 0),  # 7: 0.0.0.0 (a probe) -> drop
        (ret, 0, 0, 64),  # 8: accept the first 64 bytes
        (ret, 0, 0, 0),  # 9: drop
    ]


def bpf6_not_from(own_mac: bytes) -> list[tuple[int, int, int, int]]:
    """A classic BPF program for an IPv6 packet socket: accept an ICMPv6 neighbour
    solicitation or advertisement (no extension header) unless its Ethernet source
    is `own_mac`; drop everything else."""
    hi = int.from_bytes(own_mac[:4], "big")
    lo = int.from_bytes(own_mac[4:], "big")
    ld_b, ld_h, ld_w, jeq, ret = 0x30, 0x28, 0x20, 0x15, 0x06
    return [
        (ld_h, 0, 0, 12),  # 0: ethertype
        (jeq, 0, 10, 0x86DD),  # 1: not IPv6 -> drop
        (ld_w, 0, 0, 6),  # 2: Ethernet source, first four bytes
        (jeq, 0, 2, hi),  # 3: differs -> 6
        (ld_h, 0, 0, 10),  # 4: Ethernet source, last two bytes
        (jeq, 6, 0, lo),  # 5: ours -> drop
        (ld_b, 0, 0, 20),  # 6: next header
        (jeq, 0, 4, 58),  # 7: not ICMPv6 -> drop
        (ld_b, 0, 0, 54),  # 8: ICMPv6 type
        (jeq, 1, 0, packets.ND_NEIGHBOR_ADVERT),  # 9: -> accept
        (jeq, 0, 1, packets.ND_NEIGHBOR_SOLICIT),  # 10: else -> drop
        (ret, 0, 0, 96),  # 11: accept the first 96 bytes
        (ret, 0, 0, 0),  # 12: drop
    ]


def attach_filter(sock: socket.socket, program: list[tuple[int, int, int, int]]) -> None:
    """SO_ATTACH_FILTER `program` on `sock` (the kernel copies it)."""
    code = b"".join(struct.pack("HBBI", *insn) for insn in program)
    buf = ctypes.create_string_buffer(code, len(code))
    fprog = struct.pack("HL", len(program), ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


# -- the listener ------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    """What the listener tells the daemon: a conflict began or ended (`kind`)."""

    kind: str  # "began" or "ended"
    ifname: str
    address: IPAddress
    mac: str
    first: float
    last: float
    frames: int
    reclaimed: bool = False  # ended: the address was announced again


class _Listener:
    """One interface's socket for one IP version, and the interface's MAC."""

    def __init__(self, sock: socket.socket, own_mac: bytes, version: int) -> None:
        self.sock = sock
        self.own_mac = own_mac
        self.version = version


class ConflictWatch:
    """Listens for conflicting ARP on every interface with watched addresses, defends
    them and reports (see the module docstring). Thread-safe."""

    def __init__(
        self,
        tunables: Tunables,
        announce: Callable[[str, list[IPAddress]], None],
        still_held: StillHeld | None = None,
        make_socket: packets.SocketFactory = socket.socket,
        clock: Clock = time.monotonic,
    ) -> None:
        self.tunables = tunables
        self.announce = announce  # the kit's announcement (first frame now, repeats planned)
        self.still_held = still_held
        self.make_socket = make_socket
        self.clock = clock
        self.on_report: Callable[[Report], None] | None = None
        # MACs found to be servers of this cluster (a split brain: the cluster resolves
        # it; no defence beyond the first, no reclaim, nothing kept), set by the engine.
        self.peer_macs: dict[str, str] = {}
        self._lock = threading.Lock()
        self._watched: dict[str, dict[bytes, IPAddress]] = {}
        self._counts: dict[tuple[str, int], int] = {}  # (interface, version) -> addresses
        self._listeners: dict[tuple[str, int], _Listener] = {}
        self._conflicts = Conflicts()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._thread: threading.Thread | None = None
        self._closed = False
        self.frames = 0  # frames that reached user space
        self.defences = 0  # defensive announcements sent

    # -- what to watch (any thread) --------------------------------------------------

    def watch(self, ifname: str, address: IPAddress) -> None:
        """Listen for others sending `address` on `ifname`."""
        with self._lock:
            mine = self._watched.setdefault(ifname, {})
            if address.packed in mine:
                return
            mine[address.packed] = address
            where = (ifname, address.version)
            new = where not in self._counts
            self._counts[where] = self._counts.get(where, 0) + 1
            start = self._thread is None and not self._closed
        if start:
            self._start()
        elif new:
            self._poke()  # a socket to open

    def unwatch(self, ifname: str, addresses: list[IPAddress]) -> None:
        """Stop listening for these addresses on `ifname` (they leave this server); a
        conflict in course is forgotten, and no defence of them leaves afterwards."""
        with self._lock:
            mine = self._watched.get(ifname)
            emptied = False
            for address in addresses:
                self._conflicts.drop((ifname, address))
                if mine is None or mine.pop(address.packed, None) is None:
                    continue
                where = (ifname, address.version)
                self._counts[where] -= 1
                if not self._counts[where]:
                    del self._counts[where]
                    emptied = True
            if mine is not None and not mine:
                del self._watched[ifname]
        if emptied:
            self._poke()  # a socket to close

    def active(self, ifname: str, address: IPAddress) -> Conflict | None:
        """The conflict in course for `address` on `ifname`, if any."""
        with self._lock:
            return self._conflicts.get((ifname, address))

    def watched(self) -> dict[str, set[IPAddress]]:
        """The addresses watched, by interface."""
        with self._lock:
            return {i: set(m.values()) for i, m in self._watched.items()}

    def listening(self) -> set[tuple[str, int]]:
        """The (interface, IP version) pairs with a socket open now."""
        with self._lock:
            return set(self._listeners)

    def close(self) -> None:
        """Stop the thread and close the sockets."""
        with self._lock:
            self._closed = True
        self._poke()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with contextlib.suppress(OSError):
            os.close(self._wake_r)
            os.close(self._wake_w)

    def _poke(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def _start(self) -> None:
        thread = threading.Thread(target=self._run, name="ipk-conflict", daemon=True)
        with self._lock:
            if self._thread is not None:
                return
            self._thread = thread
        thread.start()

    # -- the thread --------------------------------------------------------------------

    def _interval(self) -> float:
        return float(self.tunables.get("DEFEND_INTERVAL"))

    def _sync(self, enabled: bool) -> None:
        """Sockets open for exactly the (interface, version) pairs with watched
        addresses (none when off)."""
        with self._lock:
            wanted = set(self._counts) if enabled and not self._closed else set()
            have = set(self._listeners)
        for where in have - wanted:
            with self._lock:
                gone = self._listeners.pop(where)
            threading.Thread(
                target=gone.sock.close, name="close-packet-socket", daemon=True
            ).start()
        for ifname, version in sorted(wanted - have):
            try:
                listener = self._open(ifname, version)
            except OSError as exc:
                log.warning(
                    "conflict detection on %s (IPv%d): %s; trying again later", ifname, version, exc
                )
                continue
            with self._lock:
                self._listeners[(ifname, version)] = listener

    def _open(self, ifname: str, version: int) -> _Listener:
        # Protocol 0 until the filter is on: nothing unfiltered is queued meanwhile.
        sock = self.make_socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        try:
            sock.bind((ifname, 0))
            own_mac = sock.getsockname()[4]
            if version == 4:
                attach_filter(sock, bpf_not_from(own_mac))
                sock.bind((ifname, packets.ETH_P_ARP))
            else:
                attach_filter(sock, bpf6_not_from(own_mac))
                sock.bind((ifname, packets.ETH_P_IPV6))
            sock.setblocking(False)
            return _Listener(sock, own_mac, version)
        except BaseException:
            sock.close()
            raise

    def _run(self) -> None:
        name_this_thread()
        state = {"next_sync": 0.0}
        while True:
            with self._lock:
                if self._closed:
                    break
            try:
                self._turn(state)
            except Exception:  # a bug must not end detection for good
                log.exception("conflict detection failed; going on in a second")
                time.sleep(1.0)
        self._sync(False)

    def _turn(self, state: dict[str, float]) -> None:
        """One wait for frames, a wake-up or the next conflict's end, and what follows."""
        now = self.clock()
        if now >= state["next_sync"]:
            self._sync(bool(self.tunables.get("IP_CONFLICT_DETECT")))
            state["next_sync"] = now + RECHECK
        interval = self._interval()
        self._expire(now, interval)
        with self._lock:
            by_fd = {lis.sock.fileno(): (w[0], lis) for w, lis in self._listeners.items()}
            end = self._conflicts.next_end(interval)
        until = min(state["next_sync"], end) if end is not None else state["next_sync"]
        poller = select.poll()  # no FD_SETSIZE limit, unlike select()
        poller.register(self._wake_r, select.POLLIN)
        for fd in by_fd:
            poller.register(fd, select.POLLIN)
        ready = poller.poll(max(0.0, until - now) * 1000.0)
        for fd, _events in ready:
            if fd == self._wake_r:
                with contextlib.suppress(OSError):
                    os.read(self._wake_r, 4096)
                state["next_sync"] = 0.0  # something changed: open or close sockets now
            elif fd in by_fd:
                self._drain(*by_fd[fd], interval)

    def _drain(self, ifname: str, listener: _Listener, interval: float) -> None:
        for _ in range(DRAIN):
            try:
                frame = listener.sock.recv(128)
            except BlockingIOError:
                return
            except OSError as exc:  # the interface went away: open again at the next sync
                log.info("conflict detection on %s: %s", ifname, exc)
                with self._lock:
                    if self._listeners.get((ifname, listener.version)) is listener:
                        del self._listeners[(ifname, listener.version)]
                threading.Thread(
                    target=listener.sock.close, name="close-packet-socket", daemon=True
                ).start()
                return
            self.frames += 1
            self._frame(ifname, listener, frame, interval)

    def _frame(self, ifname: str, listener: _Listener, frame: bytes, interval: float) -> None:
        with self._lock:
            found = classify(frame, self._watched.get(ifname, {}), listener.own_mac)
            if found is None:
                return
            address, mac = found
            if self.still_held is not None and not self.still_held(ifname, address):
                return
            seen = self._conflicts.saw((ifname, address), mac, self.clock(), interval)
            if seen.defend and mac not in self.peer_macs:
                # Under the lock: unwatch() returns only once no defence can leave.
                with contextlib.suppress(OSError):
                    listener.sock.send(packets.announcement(listener.own_mac, address))
                    self.defences += 1
            c = seen.conflict
            report = Report("began", ifname, address, mac, c.first, c.last, c.frames)
        if seen.new:
            log.warning(
                "address conflict: %s also announced by %s on %s; defending", address, mac, ifname
            )
            self._tell(report)

    def _expire(self, now: float, interval: float) -> None:
        with self._lock:
            over = self._conflicts.ended(now, interval)
        for c in over:
            held = self.still_held is None or self.still_held(c.ifname, c.address)
            with self._lock:
                held = held and c.address.packed in self._watched.get(c.ifname, {})
                # A split brain with a peer is over when the cluster resolved it, and
                # the winner announces then: reclaiming here too would fight it.
                held = held and c.mac not in self.peer_macs
            if held:
                try:
                    self.announce(c.ifname, [c.address])
                except OSError as exc:
                    log.warning("reclaiming %s on %s: %s", c.address, c.ifname, exc)
                    held = False
            self._tell(Report("ended", c.ifname, c.address, c.mac, c.first, c.last, c.frames, held))

    def _tell(self, report: Report) -> None:
        if self.on_report is not None:
            try:
                self.on_report(report)
            except Exception:
                log.exception("reporting an address conflict failed")
