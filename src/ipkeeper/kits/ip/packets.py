"""Every packet the IP kit sends or listens for, built on the standard library.

- ARP probe (RFC 5227) and gratuitous ARP, on an AF_PACKET socket;
- IPv6 duplicate address detection (a neighbour solicitation from ::) and the
  unsolicited neighbour advertisement, on an AF_PACKET socket too, so that the
  VIP need not be configured (or out of its tentative state) to use them;
- ICMP/ICMPv6 echo from a chosen source address to unicast, broadcast or
  multicast destinations, on raw sockets.

Sockets come from a factory so the lab can create them inside a namespace;
the daemon, already inside its namespace, uses `socket.socket`.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

SocketFactory = Callable[[int, int, int], socket.socket]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
PACKET_OUTGOING = 4
SIOCGIFINDEX = 0x8933
ICMP6_FILTER = 1
BROADCAST_MAC = b"\xff" * 6
ALL_NODES = ipaddress.IPv6Address("ff02::1")
ICMP_ECHO_REPLY, ICMP_ECHO = 0, 8
ICMP6_ECHO, ICMP6_ECHO_REPLY = 128, 129
ND_NEIGHBOR_SOLICIT, ND_NEIGHBOR_ADVERT = 135, 136
ND_NA_FLAG_OVERRIDE = 0x20000000


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of `data`."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def mac_text(raw: bytes) -> str:
    """`02:49:4b:00:00:0b` from six bytes."""
    return ":".join(f"{b:02x}" for b in raw)


def ifindex(sock: socket.socket, ifname: str) -> int:
    """Index of `ifname` as seen from the namespace `sock` lives in."""
    req = struct.pack("16si", ifname.encode(), 0)
    return int(struct.unpack("16si", fcntl.ioctl(sock.fileno(), SIOCGIFINDEX, req))[1])


@contextlib.contextmanager
def _packet_socket(
    make_socket: SocketFactory, ifname: str, proto: int
) -> Iterator[tuple[socket.socket, bytes]]:
    """An AF_PACKET socket bound to `ifname`, and the interface's MAC.

    Closing a packet socket waits for an RCU grace period in the kernel (about
    10-25 ms here), so it is closed on a short-lived thread instead of making
    every probe and announcement wait for it.
    """
    # Protocol 0 at creation, the real one at bind: re-binding a socket that
    # already listens costs another grace period.
    sock = make_socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        sock.bind((ifname, proto))
        yield sock, sock.getsockname()[4]
    finally:
        threading.Thread(target=sock.close, name="close-packet-socket", daemon=True).start()


def _receive(sock: socket.socket, deadline: float) -> Iterable[tuple[bytes, tuple]]:
    """Yield (data, address) for each packet that arrives before `deadline`.

    Packets already queued when the deadline passes are read too: they came
    in time, even if this thread was scheduled late (a busy machine).
    """
    while (remaining := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([sock], [], [], remaining)
        if not ready:
            break
        yield sock.recvfrom(2048)
    while select.select([sock], [], [], 0)[0]:
        yield sock.recvfrom(2048)


def _probe(
    sock: socket.socket,
    frame: bytes,
    claimant: Callable[[bytes], str | None],
    wait: float,
    probes: int,
) -> str | None:
    """Send `frame` `probes` times over the first half of `wait`, listening for
    the whole of `wait`; return the first claimant found (a MAC) or None."""
    start = time.monotonic()
    gap = wait / 2 / max(probes - 1, 1)
    deadline = start + wait
    for i in range(probes):
        sock.send(frame)
        until = min(start + (i + 1) * gap, deadline) if i < probes - 1 else deadline
        for data, addr in _receive(sock, until):
            if addr[2] != PACKET_OUTGOING and (holder := claimant(data)):
                return holder
    return None


# --- IPv4: ARP --------------------------------------------------------------


def _arp_frame(src_mac: bytes, op: int, sender_ip: bytes, target_ip: bytes) -> bytes:
    eth = BROADCAST_MAC + src_mac + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, op)
    return eth + arp + src_mac + sender_ip + b"\0" * 6 + target_ip


def _arp_claimant(frame: bytes, address: bytes, own_mac: bytes) -> str | None:
    """The MAC of another host that claims `address` in this ARP frame, if any."""
    if len(frame) < 42 or frame[12:14] != b"\x08\x06":
        return None
    sender_mac, sender_ip = frame[22:28], frame[28:32]
    target_ip = frame[38:42]
    if sender_mac == own_mac:
        return None
    if sender_ip == address:
        return mac_text(sender_mac)
    if sender_ip == b"\0\0\0\0" and target_ip == address:
        return mac_text(sender_mac)  # someone else probing for it right now
    return None


def arp_probe(
    ifname: str,
    address: ipaddress.IPv4Address,
    *,
    wait: float,
    probes: int = 3,
    make_socket: SocketFactory = socket.socket,
) -> str | None:
    """RFC 5227 probe for `address` on `ifname`: the MAC of a holder, or None.

    Sends `probes` probes spread over the first half of `wait` and listens for
    the whole of `wait` (returning at once when a holder answers).
    """
    with _packet_socket(make_socket, ifname, ETH_P_ARP) as (sock, own_mac):
        probe = _arp_frame(own_mac, 1, b"\0\0\0\0", address.packed)
        return _probe(
            sock, probe, lambda f: _arp_claimant(f, address.packed, own_mac), wait, probes
        )


def gratuitous_arp(
    ifname: str, address: ipaddress.IPv4Address, make_socket: SocketFactory = socket.socket
) -> None:
    """Announce that `address` is at this interface's MAC (one gratuitous ARP request)."""
    with _packet_socket(make_socket, ifname, ETH_P_ARP) as (sock, own_mac):
        sock.send(_arp_frame(own_mac, 1, address.packed, address.packed))


# --- IPv6: neighbour discovery ---------------------------------------------


def _solicited_node(address: ipaddress.IPv6Address) -> ipaddress.IPv6Address:
    return ipaddress.IPv6Address(b"\xff\x02" + b"\0" * 9 + b"\x01\xff" + address.packed[13:])


def _multicast_mac(address: ipaddress.IPv6Address) -> bytes:
    return b"\x33\x33" + address.packed[12:]


def _ipv6_frame(
    src_mac: bytes,
    src: ipaddress.IPv6Address,
    dst: ipaddress.IPv6Address,
    icmp: bytes,
) -> bytes:
    pseudo = src.packed + dst.packed + struct.pack("!I3xB", len(icmp), socket.IPPROTO_ICMPV6)
    csum = checksum(pseudo + icmp)
    icmp = icmp[:2] + struct.pack("!H", csum) + icmp[4:]
    header = struct.pack("!IHBB", 6 << 28, len(icmp), socket.IPPROTO_ICMPV6, 255)
    eth = _multicast_mac(dst) + src_mac + struct.pack("!H", ETH_P_IPV6)
    return eth + header + src.packed + dst.packed + icmp


def _nd_claimant(frame: bytes, address: bytes, own_mac: bytes) -> str | None:
    """The MAC of another host that claims `address` in this IPv6 frame, if any."""
    if len(frame) < 14 + 40 + 24 or frame[12:14] != b"\x86\xdd" or frame[20] != 58:
        return None
    src_mac, src_ip, icmp = frame[6:12], frame[22:38], frame[54:]
    if src_mac == own_mac or icmp[8:24] != address:
        return None
    if icmp[0] == ND_NEIGHBOR_ADVERT:
        return mac_text(src_mac)
    if icmp[0] == ND_NEIGHBOR_SOLICIT and src_ip == b"\0" * 16:
        return mac_text(src_mac)  # another node's DAD for the same address
    return None


def dad_probe(
    ifname: str,
    address: ipaddress.IPv6Address,
    *,
    wait: float,
    probes: int = 3,
    make_socket: SocketFactory = socket.socket,
) -> str | None:
    """Duplicate address detection (RFC 4862) for `address`: the holder's MAC, or None."""
    with _packet_socket(make_socket, ifname, ETH_P_IPV6) as (sock, own_mac):
        ns = struct.pack("!BBHI", ND_NEIGHBOR_SOLICIT, 0, 0, 0) + address.packed
        frame = _ipv6_frame(own_mac, ipaddress.IPv6Address("::"), _solicited_node(address), ns)
        return _probe(sock, frame, lambda f: _nd_claimant(f, address.packed, own_mac), wait, probes)


def unsolicited_na(
    ifname: str, address: ipaddress.IPv6Address, make_socket: SocketFactory = socket.socket
) -> None:
    """Announce `address` at this interface's MAC to all nodes (override flag set)."""
    with _packet_socket(make_socket, ifname, ETH_P_IPV6) as (sock, own_mac):
        na = struct.pack("!BBHI", ND_NEIGHBOR_ADVERT, 0, 0, ND_NA_FLAG_OVERRIDE)
        na += address.packed + struct.pack("!BB", 2, 1) + own_mac
        sock.send(_ipv6_frame(own_mac, address, ALL_NODES, na))


# --- ICMP echo ---------------------------------------------------------------


@dataclass(frozen=True)
class EchoReply:
    """The first answer to an echo: who answered and after how long (seconds)."""

    responder: IPAddress
    rtt: float


def _echo_socket(
    version: int,
    source: IPAddress | None,
    ifname: str | None,
    make_socket: SocketFactory,
) -> socket.socket:
    if version == 4:
        sock = make_socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    else:
        sock = make_socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        blocked = [0xFFFFFFFF] * 8
        blocked[ICMP6_ECHO_REPLY >> 5] &= ~(1 << (ICMP6_ECHO_REPLY & 31))
        sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, struct.pack("8I", *blocked))
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 1)
    try:
        if ifname:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
            if version == 6:
                sock.setsockopt(
                    socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex(sock, ifname)
                )
        if source is not None:
            sock.bind((str(source), 0))
    except OSError:
        sock.close()
        raise
    return sock


def _echo_request(version: int, ident: int, seq: int) -> bytes:
    payload = struct.pack("!d", time.monotonic()) + b"ipkeeper"
    if version == 6:
        return struct.pack("!BBHHH", ICMP6_ECHO, 0, 0, ident, seq) + payload
    header = struct.pack("!BBHHH", ICMP_ECHO, 0, 0, ident, seq)
    csum = checksum(header + payload)
    return struct.pack("!BBHHH", ICMP_ECHO, 0, csum, ident, seq) + payload


def _echo_reply_ident(version: int, data: bytes) -> int | None:
    if version == 4:
        data = data[(data[0] & 0x0F) * 4 :] if data else data
        wanted = ICMP_ECHO_REPLY
    else:
        wanted = ICMP6_ECHO_REPLY
    if len(data) < 8 or data[0] != wanted:
        return None
    return int(struct.unpack("!H", data[4:6])[0])


def _sockaddr(target: IPAddress, scope: int) -> tuple:
    if target.version == 4:
        return (str(target), 0)
    return (str(target), 0, 0, scope if target.is_link_local or target.is_multicast else 0)


def echo(
    targets: Sequence[IPAddress],
    *,
    source: IPAddress | None = None,
    ifname: str | None = None,
    timeout: float = 1.0,
    tries: int = 1,
    preload: int = 1,
    ignore: Iterable[IPAddress] = (),
    make_socket: SocketFactory = socket.socket,
) -> EchoReply | None:
    """Ping every target at once and return the first answer, or None.

    Each of `tries` rounds sends `preload` echo requests to every target and
    waits up to `timeout` seconds. Answers from `ignore` (this server's own
    addresses, which answer a broadcast too) do not count. Targets may be
    unicast, a subnet broadcast or a multicast group (then `ifname` is needed).
    Raises OSError only when no request at all could be sent.
    """
    if not targets:
        raise ValueError("targets: at least one address is needed")
    version = targets[0].version
    ignored = {str(a) for a in ignore}
    ident = int.from_bytes(os.urandom(2), "big")
    seq = 0
    with _echo_socket(version, source, ifname, make_socket) as sock:
        scope = ifindex(sock, ifname) if ifname and version == 6 else 0
        for _ in range(tries):
            start = time.monotonic()
            sent, last_error = 0, None
            for target in targets:
                for _ in range(preload):
                    seq = (seq + 1) & 0xFFFF
                    try:
                        sock.sendto(_echo_request(version, ident, seq), _sockaddr(target, scope))
                        sent += 1
                    except OSError as exc:
                        last_error = exc
            if not sent and last_error is not None:
                raise last_error
            for data, addr in _receive(sock, start + timeout):
                responder = addr[0].split("%")[0]
                if _echo_reply_ident(version, data) == ident and responder not in ignored:
                    return EchoReply(ipaddress.ip_address(responder), time.monotonic() - start)
    return None


# --- many addresses at once ---------------------------------------------------
#
# A takeover of a thousand VIPs probes and announces them together: one
# packet socket per protocol and interface, every probe sent in each round,
# one listening window for all of them; the announcements (announce.py) on
# sockets kept open for their repeats.


def _probe_frame(own_mac: bytes, address: IPAddress) -> bytes:
    if address.version == 4:
        return _arp_frame(own_mac, 1, b"\0\0\0\0", address.packed)
    ns = struct.pack("!BBHI", ND_NEIGHBOR_SOLICIT, 0, 0, 0) + address.packed
    return _ipv6_frame(own_mac, ipaddress.IPv6Address("::"), _solicited_node(address), ns)


def _claimed(
    frame: bytes, wanted: dict[bytes, IPAddress], own_mac: bytes
) -> tuple[IPAddress, str] | None:
    """(address, MAC) when this frame shows another host claiming one of `wanted`."""
    if frame[12:14] == b"\x08\x06" and len(frame) >= 42:
        for candidate in (frame[28:32], frame[38:42]):
            found = wanted.get(candidate)
            if found is not None and (holder := _arp_claimant(frame, candidate, own_mac)):
                return found, holder
        return None
    if frame[12:14] == b"\x86\xdd" and len(frame) >= 14 + 40 + 24:
        found = wanted.get(frame[62:78])
        if found is not None and (holder := _nd_claimant(frame, found.packed, own_mac)):
            return found, holder
    return None


def probe_many(
    ifname: str,
    addresses: Sequence[IPAddress],
    *,
    wait: float,
    probes: int = 3,
    make_socket: SocketFactory = socket.socket,
) -> dict[IPAddress, str]:
    """RFC 5227 probes (IPv4) and DAD (IPv6) for every address on `ifname` at once:
    the holder's MAC of each address another host answers for (absent: free).

    Each of `probes` rounds, spread over the first half of `wait`, probes
    every address; answers are heard for the whole of `wait`.
    """
    holders: dict[IPAddress, str] = {}
    families = sorted({a.version for a in addresses})
    with contextlib.ExitStack() as stack:
        sockets = []
        for version in families:
            proto = ETH_P_ARP if version == 4 else ETH_P_IPV6
            sock, own_mac = stack.enter_context(_packet_socket(make_socket, ifname, proto))
            mine = [a for a in addresses if a.version == version]
            frames = [_probe_frame(own_mac, a) for a in mine]
            sockets.append((sock, own_mac, frames, {a.packed: a for a in mine}))
        start = time.monotonic()
        gap = wait / 2 / max(probes - 1, 1)
        deadline = start + wait
        for i in range(probes):
            for sock, _own, frames, _wanted in sockets:
                for frame in frames:
                    with contextlib.suppress(BlockingIOError):
                        sock.send(frame)
            until = min(start + (i + 1) * gap, deadline) if i < probes - 1 else deadline
            _listen_all(sockets, until, holders)
    return holders


def _listen_all(
    sockets: list[tuple[socket.socket, bytes, list[bytes], dict[bytes, IPAddress]]],
    deadline: float,
    holders: dict[IPAddress, str],
) -> None:
    by_fd = {s.fileno(): (s, own, wanted) for s, own, _f, wanted in sockets}
    while True:
        remaining = deadline - time.monotonic()
        ready, _, _ = select.select(list(by_fd), [], [], max(remaining, 0))
        if not ready:
            return
        for fd in ready:
            sock, own_mac, wanted = by_fd[fd]
            data, addr = sock.recvfrom(2048)
            if addr[2] != PACKET_OUTGOING and (claim := _claimed(data, wanted, own_mac)):
                holders.setdefault(*claim)


def announcement_socket(
    ifname: str, version: int, make_socket: SocketFactory = socket.socket
) -> tuple[socket.socket, bytes]:
    """A packet socket on `ifname` for announcing addresses of IP `version`, and the
    interface's MAC; kept open by the caller (kits/ip/announce.py) for the repeats.

    It is created in the calling thread's network namespace and stays there,
    whichever thread later sends on it. Its receive buffer is the smallest the
    kernel allows: nothing is ever read from it.
    """
    sock = make_socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 0)
        sock.bind((ifname, ETH_P_ARP if version == 4 else ETH_P_IPV6))
        return sock, sock.getsockname()[4]
    except BaseException:
        sock.close()
        raise


def announcement(own_mac: bytes, address: IPAddress) -> bytes:
    """The frame announcing `address` at `own_mac`: a gratuitous ARP request (IPv4) or
    an unsolicited neighbour advertisement to all nodes with the override flag (IPv6)."""
    return _announcement(own_mac, address)


def _announcement(own_mac: bytes, address: IPAddress) -> bytes:
    if address.version == 4:
        return _arp_frame(own_mac, 1, address.packed, address.packed)
    na = struct.pack("!BBHI", ND_NEIGHBOR_ADVERT, 0, 0, ND_NA_FLAG_OVERRIDE)
    na += address.packed + struct.pack("!BB", 2, 1) + own_mac
    return _ipv6_frame(own_mac, address, ALL_NODES, na)
