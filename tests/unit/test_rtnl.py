"""Raw rtnetlink encoding and decoding (the IP kit's hot path at scale)."""

from __future__ import annotations

import ipaddress
import socket
import struct

from ipkeeper.kits.ip import rtnl


def test_an_address_request_decodes_back_to_the_same_address() -> None:
    for text in ("198.18.4.10/22", "2001:db8::50/64"):
        iface = ipaddress.ip_interface(text)
        data = rtnl.address_request(rtnl.RTM_NEWADDR, 7, iface, seq=3, ack=True)
        (message,) = list(rtnl.decode(data))
        assert message == rtnl.AddrMessage(rtnl.RTM_NEWADDR, 7, iface, message.flags)


def test_only_an_acknowledged_request_asks_for_an_acknowledgement() -> None:
    iface = ipaddress.ip_interface("198.18.4.10/22")
    asked = rtnl.address_request(rtnl.RTM_DELADDR, 7, iface, seq=1, ack=True)
    silent = rtnl.address_request(rtnl.RTM_DELADDR, 7, iface, seq=2, ack=False)
    flags = [rtnl.HEADER.unpack_from(d)[2] for d in (asked, silent)]
    assert flags[0] & rtnl.NLM_F_ACK and not flags[1] & rtnl.NLM_F_ACK


def test_ipv6_additions_skip_duplicate_address_detection() -> None:
    iface = ipaddress.ip_interface("2001:db8::50/64")
    (added,) = rtnl.decode(rtnl.address_request(rtnl.RTM_NEWADDR, 1, iface, 1, ack=True))
    (deleted,) = rtnl.decode(rtnl.address_request(rtnl.RTM_DELADDR, 1, iface, 1, ack=True))
    assert isinstance(added, rtnl.AddrMessage) and added.flags & rtnl.IFA_F_NODAD
    assert isinstance(deleted, rtnl.AddrMessage) and not deleted.flags & rtnl.IFA_F_NODAD


def _link(index: int, name: str, flags: int) -> bytes:
    raw = name.encode() + b"\0"
    attr = struct.pack("=HH", 4 + len(raw), rtnl.IFLA_IFNAME) + raw
    attr += b"\0" * (-len(attr) % 4)
    body = struct.pack("=BxHiII", socket.AF_UNSPEC, 1, index, flags, 0) + attr
    return rtnl.HEADER.pack(16 + len(body), rtnl.RTM_NEWLINK, 0, 0, 0) + body


def test_several_messages_in_one_read_are_all_decoded_and_others_skipped() -> None:
    iface = ipaddress.ip_interface("198.18.4.10/22")
    done = rtnl.HEADER.pack(20, rtnl.NLMSG_DONE, 0, 9, 0) + b"\0" * 4
    data = (
        _link(3, "eth0", 0x10041) + done + rtnl.address_request(rtnl.RTM_DELADDR, 3, iface, 4, True)
    )
    assert list(rtnl.decode(data)) == [
        rtnl.LinkMessage(rtnl.RTM_NEWLINK, 3, "eth0", 0x10041),
        rtnl.AddrMessage(rtnl.RTM_DELADDR, 3, iface, 0),
    ]


def test_an_error_message_carries_the_errno() -> None:
    body = struct.pack("=i", -17) + b"\0" * 16
    data = rtnl.HEADER.pack(16 + len(body), rtnl.NLMSG_ERROR, 0, 5, 0) + body
    ((kind, _flags, seq, start, _end),) = list(rtnl.messages(data))
    assert (kind, seq, rtnl.error_code(data, start)) == (rtnl.NLMSG_ERROR, 5, 17)


def test_a_truncated_read_stops_without_raising() -> None:
    iface = ipaddress.ip_interface("198.18.4.10/22")
    data = rtnl.address_request(rtnl.RTM_NEWADDR, 3, iface, 1, True)
    assert list(rtnl.decode(data[:10])) == []  # not even a header
    assert list(rtnl.decode(data[:20])) == []  # a header and half a body
