"""Packet building and parsing (pure parts of kits/ip/packets.py)."""

from __future__ import annotations

import ipaddress
import struct

from ipkeeper.kits.ip import packets

OWN = bytes.fromhex("02494b00000b")
OTHER = bytes.fromhex("02494b000001")
VIP = ipaddress.IPv4Address("198.18.0.50")


def test_checksum_of_a_known_header() -> None:
    header = bytes.fromhex("450000730000400040110000c0a80001c0a800c7")
    assert packets.checksum(header) == 0xB861
    assert packets.checksum(b"\x01") == packets.checksum(b"\x01\x00")


def test_an_arp_probe_has_no_sender_address() -> None:
    frame = packets._arp_frame(OWN, 1, b"\0\0\0\0", VIP.packed)
    assert frame[:6] == b"\xff" * 6 and frame[6:12] == OWN
    assert frame[28:32] == b"\0\0\0\0" and frame[38:42] == VIP.packed


def test_who_claims_an_address() -> None:
    reply = packets._arp_frame(OTHER, 2, VIP.packed, b"\0\0\0\0")
    assert packets._arp_claimant(reply, VIP.packed, OWN) == "02:49:4b:00:00:01"
    other_probe = packets._arp_frame(OTHER, 1, b"\0\0\0\0", VIP.packed)
    assert packets._arp_claimant(other_probe, VIP.packed, OWN) == "02:49:4b:00:00:01"
    own_probe = packets._arp_frame(OWN, 1, b"\0\0\0\0", VIP.packed)
    assert packets._arp_claimant(own_probe, VIP.packed, OWN) is None
    unrelated = packets._arp_frame(OTHER, 1, b"\xc6\x12\x00\x01", b"\xc6\x12\x00\x02")
    assert packets._arp_claimant(unrelated, VIP.packed, OWN) is None


def test_neighbour_advertisement_is_valid_icmpv6() -> None:
    vip6 = ipaddress.IPv6Address("2001:db8::50")
    body = struct.pack("!BBHI", 136, 0, 0, packets.ND_NA_FLAG_OVERRIDE) + vip6.packed
    frame = packets._ipv6_frame(OWN, vip6, packets.ALL_NODES, body)
    assert frame[:6] == bytes.fromhex("333300000001")
    icmp = frame[54:]
    pseudo = vip6.packed + packets.ALL_NODES.packed + struct.pack("!I3xB", len(icmp), 58)
    assert packets.checksum(pseudo + icmp) == 0  # a correct checksum sums to zero
    assert packets._nd_claimant(frame, vip6.packed, OTHER) == "02:49:4b:00:00:0b"
    assert packets._nd_claimant(frame, vip6.packed, OWN) is None


def test_solicited_node_address() -> None:
    addr = ipaddress.IPv6Address("2001:db8::1:2:3")
    assert str(packets._solicited_node(addr)) == "ff02::1:ff02:3"
