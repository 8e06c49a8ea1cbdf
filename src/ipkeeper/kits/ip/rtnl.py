"""Raw rtnetlink messages for links and addresses, encoded and decoded with `struct`.

pyroute2 remains the IP kit's library for everything else; these few message
kinds are the hot path at scale (a thousand VIPs added or deleted, and the
thousand notifications the kernel sends back), where pyroute2's generic
message classes cost about a millisecond each and, on a thread of their own,
take the interpreter away from the heartbeat and the main loop for as long.
The formats are the kernel's (linux/netlink.h, linux/if_addr.h,
linux/rtnetlink.h); nothing here keeps state.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from ipkeeper.kits.ip.params import IPInterface

NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK = 0x1, 0x2, 0x4
NLM_F_DUMP, NLM_F_EXCL, NLM_F_CREATE = 0x300, 0x200, 0x400
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_GETROUTE = 24, 26
RTA_DST, RTA_OIF, RTA_PREFSRC, RTA_TABLE = 1, 4, 7, 15
IFA_ADDRESS, IFA_LOCAL = 1, 2
IFLA_IFNAME = 3
IFA_F_SECONDARY, IFA_F_NODAD = 0x01, 0x02

HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port
_IFADDR = struct.Struct("=BBBBI")  # ifaddrmsg: family, prefixlen, flags, scope, index
_IFINFO = struct.Struct("=BxHiII")  # ifinfomsg: family, type, index, flags, change
_RTMSG = struct.Struct("=BBBBBBBBI")  # rtmsg: family, dst_len, src_len, tos, table, ...
_RTATTR = struct.Struct("=HH")
_ERRNO = struct.Struct("=i")


@dataclass(frozen=True)
class AddrMessage:
    """An address added or deleted (or one line of a dump)."""

    kind: int  # RTM_NEWADDR or RTM_DELADDR
    index: int
    iface: IPInterface
    flags: int


@dataclass(frozen=True)
class LinkMessage:
    """A link added, changed or deleted (or one line of a dump)."""

    kind: int  # RTM_NEWLINK or RTM_DELLINK
    index: int
    name: str | None
    flags: int


@dataclass(frozen=True)
class RouteMessage:
    """One route of a dump."""

    table: int
    destination: IPInterface | None  # None: the default route
    oif: int | None
    prefsrc: IPInterface | None


def _align(length: int) -> int:
    return (length + 3) & ~3


def _attr(kind: int, value: bytes) -> bytes:
    body = _RTATTR.pack(_RTATTR.size + len(value), kind) + value
    return body + b"\0" * (_align(len(body)) - len(body))


def address_request(kind: int, index: int, iface: IPInterface, seq: int, ack: bool) -> bytes:
    """An RTM_NEWADDR or RTM_DELADDR request for one address, numbered `seq`; with
    `ack` the kernel acknowledges it (a refusal is reported either way)."""
    packed = iface.ip.packed
    family = socket.AF_INET if iface.version == 4 else socket.AF_INET6
    attrs = _attr(IFA_LOCAL, packed) + _attr(IFA_ADDRESS, packed) if iface.version == 4 else b""
    attrs = attrs or _attr(IFA_ADDRESS, packed)
    ifa_flags = IFA_F_NODAD if kind == RTM_NEWADDR and iface.version == 6 else 0
    flags = NLM_F_REQUEST | (NLM_F_ACK if ack else 0)
    if kind == RTM_NEWADDR:
        flags |= NLM_F_CREATE | NLM_F_EXCL
    body = _IFADDR.pack(family, iface.network.prefixlen, ifa_flags, 0, index) + attrs
    return HEADER.pack(HEADER.size + len(body), kind, flags, seq, 0) + body


def dump_request(kind: int, seq: int, family: int = 0) -> bytes:
    """A dump of every address (RTM_GETADDR), link (RTM_GETLINK) or route of `family`
    (RTM_GETROUTE)."""
    if kind == RTM_GETLINK:
        body = _IFINFO.pack(0, 0, 0, 0, 0)
    elif kind == RTM_GETROUTE:
        body = _RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)
    else:
        body = _IFADDR.pack(family, 0, 0, 0, 0)
    return HEADER.pack(HEADER.size + len(body), kind, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body


def _attrs(data: bytes, start: int, end: int) -> dict[int, bytes]:
    found: dict[int, bytes] = {}
    while start + _RTATTR.size <= end:
        length, kind = _RTATTR.unpack_from(data, start)
        if length < _RTATTR.size:
            break
        found.setdefault(kind, data[start + _RTATTR.size : start + length])
        start += _align(length)
    return found


def _address(family: int, prefixlen: int, attrs: dict[int, bytes]) -> IPInterface | None:
    raw = attrs.get(IFA_LOCAL) if family == socket.AF_INET else None
    raw = raw or attrs.get(IFA_ADDRESS)
    if raw is None:
        return None
    if family == socket.AF_INET and len(raw) == 4:
        return ipaddress.IPv4Interface((raw, prefixlen))
    if family == socket.AF_INET6 and len(raw) == 16:
        return ipaddress.IPv6Interface((raw, prefixlen))
    return None


def messages(data: bytes) -> Iterator[tuple[int, int, int, int, int]]:
    """Every netlink message in `data`: (type, flags, sequence, body start, end)."""
    offset = 0
    while offset + HEADER.size <= len(data):
        length, kind, flags, seq, _port = HEADER.unpack_from(data, offset)
        if length < HEADER.size:
            return
        yield kind, flags, seq, offset + HEADER.size, min(offset + length, len(data))
        offset += _align(length)


def error_code(data: bytes, start: int) -> int:
    """The errno of an NLMSG_ERROR message's body (0: an acknowledgement)."""
    return -_ERRNO.unpack_from(data, start)[0]


Message = AddrMessage | LinkMessage | RouteMessage


def decode(data: bytes) -> Iterator[Message]:
    """The address, link and route messages in `data`; every other kind is skipped."""
    for kind, _flags, _seq, start, end in messages(data):
        if kind == RTM_NEWROUTE and end - start >= _RTMSG.size:
            family, dst_len, _src, _tos, table, *_rest = _RTMSG.unpack_from(data, start)
            attrs = _attrs(data, start + _RTMSG.size, end)
            if RTA_TABLE in attrs:
                table = struct.unpack("=I", attrs[RTA_TABLE][:4])[0]
            oif = attrs.get(RTA_OIF)
            dst = (
                _address(family, dst_len, {IFA_ADDRESS: attrs[RTA_DST]})
                if RTA_DST in attrs
                else None
            )
            src = (
                _address(family, 0, {IFA_ADDRESS: attrs[RTA_PREFSRC]})
                if RTA_PREFSRC in attrs
                else None
            )
            yield RouteMessage(table, dst, struct.unpack("=i", oif[:4])[0] if oif else None, src)
            continue
        if kind in (RTM_NEWADDR, RTM_DELADDR) and end - start >= _IFADDR.size:
            family, prefixlen, flags, _scope, index = _IFADDR.unpack_from(data, start)
            iface = _address(family, prefixlen, _attrs(data, start + _IFADDR.size, end))
            if iface is not None:
                yield AddrMessage(kind, index, iface, flags)
        elif kind in (RTM_NEWLINK, RTM_DELLINK) and end - start >= _IFINFO.size:
            _family, _type, index, flags, _change = _IFINFO.unpack_from(data, start)
            raw = _attrs(data, start + _IFINFO.size, end).get(IFLA_IFNAME)
            name = raw.rstrip(b"\0").decode(errors="replace") if raw is not None else None
            yield LinkMessage(kind, index, name, flags)


def dump(kind: int, family: int = 0, sock: socket.socket | None = None) -> list[Message]:
    """Every address (RTM_GETADDR), link (RTM_GETLINK) or route (RTM_GETROUTE) of this
    thread's namespace (or of `sock`'s, a bound NETLINK_ROUTE socket), in the kernel's
    order."""
    if sock is not None:
        return _dump_on(sock, kind, family)
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0) as own:  # NETLINK_ROUTE
        own.bind((0, 0))
        own.settimeout(5.0)
        return _dump_on(own, kind, family)


def _dump_on(sock: socket.socket, kind: int, family: int) -> list[Message]:
    found: list[Message] = []
    sock.send(dump_request(kind, 1, family))
    while True:
        data = sock.recv(1 << 20)
        for msg_kind, _flags, seq, start, _end in messages(data):
            if seq != 1:
                continue
            if msg_kind == NLMSG_DONE:
                return found
            if msg_kind == NLMSG_ERROR:
                raise OSError(error_code(data, start), "netlink dump refused")
        found.extend(decode(data))
