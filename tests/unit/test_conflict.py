"""In-service address conflicts (issue 11, item 9): which ARP frames are conflicts, the
kernel filter that keeps the others out, RFC 5227 section 2.4's defence rate limit and
the end of a conflict, the listener's thread with fake sockets, and what the engine
does with a resource's state."""

from __future__ import annotations

import ipaddress
import socket
import struct
import threading
import time
from pathlib import Path
from typing import Any

from ipkeeper.config.tunables import Tunables
from ipkeeper.engine import conflicts as engine_conflicts
from ipkeeper.kits.ip import conflict, packets
from ipkeeper.model.states import ResourceState
from ipkeeper.testing import wait_until

VIP = ipaddress.IPv4Address("198.18.0.50")
OTHER = ipaddress.IPv4Address("198.18.0.99")
VIP6 = ipaddress.IPv6Address("2001:db8::50")
NEAR6 = ipaddress.IPv6Address("2001:db8::1")
OURS = bytes.fromhex("02494b00000b")
ROGUE = bytes.fromhex("02494b000001")
WATCHED: dict[bytes, packets.IPAddress] = {VIP.packed: VIP, VIP6.packed: VIP6}


def arp(sender_mac: bytes, op: int, sender_ip: bytes, target_ip: bytes) -> bytes:
    return packets._arp_frame(sender_mac, op, sender_ip, target_ip)


# -- classify -------------------------------------------------------------------------


def test_a_gratuitous_arp_for_a_held_vip_from_another_mac_is_a_conflict() -> None:
    frame = packets.announcement(ROGUE, VIP)
    assert conflict.classify(frame, WATCHED, OURS) == (VIP, "02:49:4b:00:00:01")


def test_an_arp_reply_giving_a_held_vip_to_another_mac_is_a_conflict() -> None:
    frame = arp(ROGUE, 2, VIP.packed, OTHER.packed)
    assert conflict.classify(frame, WATCHED, OURS) == (VIP, "02:49:4b:00:00:01")


def test_our_own_frames_probes_and_questions_for_our_vip_are_not_conflicts() -> None:
    assert conflict.classify(packets.announcement(OURS, VIP), WATCHED, OURS) is None
    probe = arp(ROGUE, 1, b"\0\0\0\0", VIP.packed)  # a peer's unique-address check
    assert conflict.classify(probe, WATCHED, OURS) is None
    question = arp(ROGUE, 1, OTHER.packed, VIP.packed)  # who has the VIP? (the router)
    assert conflict.classify(question, WATCHED, OURS) is None
    unwatched = packets.announcement(ROGUE, OTHER)
    assert conflict.classify(unwatched, WATCHED, OURS) is None


def test_frames_that_are_not_ethernet_ipv4_arp_are_not_conflicts() -> None:
    frame = packets.announcement(ROGUE, VIP)
    assert conflict.classify(frame[:41], WATCHED, OURS) is None
    assert conflict.classify(frame[:12] + b"\x86\xdd" + frame[14:], WATCHED, OURS) is None
    odd_op = frame[:20] + struct.pack("!H", 3) + frame[22:]
    assert conflict.classify(odd_op, WATCHED, OURS) is None


def ns(src_mac: bytes, source: ipaddress.IPv6Address, target: ipaddress.IPv6Address) -> bytes:
    body = struct.pack("!BBHI", packets.ND_NEIGHBOR_SOLICIT, 0, 0, 0) + target.packed
    return packets._ipv6_frame(src_mac, source, packets._solicited_node(target), body)


def test_a_neighbour_advertisement_for_a_held_ipv6_vip_from_another_mac_is_a_conflict() -> None:
    frame = packets.announcement(ROGUE, VIP6)
    assert conflict.classify(frame, WATCHED, OURS) == (VIP6, "02:49:4b:00:00:01")
    sent_from_it = ns(ROGUE, VIP6, NEAR6)  # the other host uses the VIP as its source
    assert conflict.classify(sent_from_it, WATCHED, OURS) == (VIP6, "02:49:4b:00:00:01")


def test_ours_dad_and_solicitations_for_our_ipv6_vip_are_not_conflicts() -> None:
    assert conflict.classify(packets.announcement(OURS, VIP6), WATCHED, OURS) is None
    dad = ns(ROGUE, ipaddress.IPv6Address("::"), VIP6)  # a peer's unique-address check
    assert conflict.classify(dad, WATCHED, OURS) is None
    question = ns(ROGUE, NEAR6, VIP6)  # the router resolving the VIP
    assert conflict.classify(question, WATCHED, OURS) is None
    assert conflict.classify(packets.announcement(ROGUE, NEAR6), WATCHED, OURS) is None


# -- the kernel filter, run by a tiny classic BPF interpreter ---------------------------


def run_bpf(program: list[tuple[int, int, int, int]], frame: bytes) -> int:
    """The classic BPF subset the filter uses: ldh/ld absolute, jeq #k, ret #k."""
    pc, acc = 0, 0
    for _ in range(64):
        code, jt, jf, k = program[pc]
        if code == 0x28:
            if k + 2 > len(frame):
                return 0
            acc, pc = int.from_bytes(frame[k : k + 2], "big"), pc + 1
        elif code == 0x30:
            if k + 1 > len(frame):
                return 0
            acc, pc = frame[k], pc + 1
        elif code == 0x20:
            if k + 4 > len(frame):
                return 0
            acc, pc = int.from_bytes(frame[k : k + 4], "big"), pc + 1
        elif code == 0x15:
            pc = pc + 1 + (jt if acc == k else jf)
        elif code == 0x06:
            return k
        else:
            raise AssertionError(f"opcode {code:#x} not expected")
    raise AssertionError("the program did not end")


def test_the_kernel_filter_keeps_out_our_own_frames_and_probes_only() -> None:
    program = conflict.bpf_not_from(OURS)
    assert run_bpf(program, packets.announcement(ROGUE, VIP)) > 42
    assert run_bpf(program, arp(ROGUE, 1, OTHER.packed, VIP.packed)) > 42
    assert run_bpf(program, packets.announcement(OURS, VIP)) == 0
    assert run_bpf(program, arp(ROGUE, 1, b"\0\0\0\0", VIP.packed)) == 0
    same_start = OURS[:4] + b"\x99\x99"  # differs from ours in the last two bytes only
    assert run_bpf(program, packets.announcement(same_start, VIP)) > 42
    not_arp = packets.announcement(ROGUE, VIP)
    assert run_bpf(program, not_arp[:12] + b"\x08\x00" + not_arp[14:]) == 0


def test_the_ipv6_filter_passes_only_others_neighbour_discovery() -> None:
    program = conflict.bpf6_not_from(OURS)
    assert run_bpf(program, packets.announcement(ROGUE, VIP6)) > 78
    assert run_bpf(program, ns(ROGUE, NEAR6, VIP6)) > 78
    assert run_bpf(program, packets.announcement(OURS, VIP6)) == 0
    echo = bytearray(packets.announcement(ROGUE, VIP6))
    echo[54] = packets.ICMP6_ECHO  # other ICMPv6 stays in the kernel
    assert run_bpf(program, bytes(echo)) == 0
    udp = bytearray(packets.announcement(ROGUE, VIP6))
    udp[20] = 17
    assert run_bpf(program, bytes(udp)) == 0
    assert run_bpf(program, packets.announcement(ROGUE, VIP)) == 0  # ARP: the other socket's


# -- RFC 5227 section 2.4: the defence rate limit and the end of a conflict ------------


def test_a_conflict_is_reported_once_and_defended_at_most_once_per_interval() -> None:
    state, key = conflict.Conflicts(), ("eth0", VIP)
    first = state.saw(key, "02:49:4b:00:00:01", 100.0, 10.0)
    assert first.new and first.defend
    again = [state.saw(key, "02:49:4b:00:00:01", 100.0 + t, 10.0) for t in (0.5, 1.0, 9.9)]
    assert not any(s.new or s.defend for s in again)
    later = state.saw(key, "02:49:4b:00:00:01", 110.0, 10.0)
    assert later.defend and not later.new
    assert later.conflict.frames == 5 and later.conflict.first == 100.0


def test_a_conflict_ends_once_no_frame_came_for_the_interval() -> None:
    state, key = conflict.Conflicts(), ("eth0", VIP)
    state.saw(key, "02:49:4b:00:00:01", 100.0, 10.0)
    state.saw(key, "02:49:4b:00:00:01", 104.0, 10.0)
    assert state.next_end(10.0) == 114.0
    assert state.ended(113.9, 10.0) == []
    over = state.ended(114.0, 10.0)
    assert [c.address for c in over] == [VIP] and state.get(key) is None
    assert state.next_end(10.0) is None
    fresh = state.saw(key, "02:49:4b:00:00:02", 115.0, 10.0)
    assert fresh.new and fresh.defend  # a new conflict, a new defence


def test_an_address_that_left_is_forgotten_without_ending() -> None:
    state, key = conflict.Conflicts(), ("eth0", VIP)
    state.saw(key, "02:49:4b:00:00:01", 100.0, 10.0)
    assert state.drop(key) is not None
    assert state.ended(1000.0, 10.0) == [] and state.all() == []


# -- the listener's thread, with fake packet sockets ------------------------------------


class FakePacketSocket:
    """A packet socket's surface over a datagram socketpair: what the test writes to
    the other end arrives here; what the listener sends is collected."""

    def __init__(self, mac: bytes) -> None:
        self.mine, self.theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.mac = mac
        self.sent: list[bytes] = []
        self.filters: list[bytes] = []
        self.bound: list[tuple[str, int]] = []

    def bind(self, where: tuple[str, int]) -> None:
        self.bound.append(where)

    def getsockname(self) -> tuple[Any, ...]:
        return (self.bound[-1][0], 0, 0, 1, self.mac)

    def setsockopt(self, level: int, name: int, value: bytes) -> None:
        self.filters.append(value)

    def setblocking(self, flag: bool) -> None:
        self.mine.setblocking(flag)

    def recv(self, size: int) -> bytes:
        return self.mine.recv(size)

    def send(self, frame: bytes) -> int:
        self.sent.append(frame)
        return len(frame)

    def fileno(self) -> int:
        return self.mine.fileno()

    def close(self) -> None:
        self.mine.close()
        self.theirs.close()


def test_the_listener_reports_defends_once_and_reclaims_when_the_other_host_is_silent(
    tmp_path: Path,
) -> None:
    path = tmp_path / "tunables"
    path.write_text("DEFEND_INTERVAL=0.3\n")
    path.chmod(0o600)
    made: list[FakePacketSocket] = []

    def make_socket(family: int, kind: int, proto: int) -> Any:
        made.append(FakePacketSocket(OURS))
        return made[-1]

    announced: list[tuple[str, list[Any]]] = []
    reports: list[conflict.Report] = []
    lock = threading.Lock()

    def tell(report: conflict.Report) -> None:
        with lock:
            reports.append(report)

    watch = conflict.ConflictWatch(
        Tunables(path),
        lambda i, a: announced.append((i, a)),
        make_socket=make_socket,  # type: ignore[arg-type]
    )
    watch.on_report = tell
    try:
        watch.watch("eth0", VIP)
        watch.watch("eth0", OTHER)
        watch.watch("eth0", VIP6)
        both = {("eth0", 4), ("eth0", 6)}
        wait_until(lambda: watch.listening() == both, 2, message="sockets on eth0")
        assert len(made) == 2 and all(f.filters for f in made)  # one per version, filtered
        bound = sorted(f.bound for f in made)  # the filter on before the protocol
        assert bound == [
            [("eth0", 0), ("eth0", packets.ETH_P_ARP)],
            [("eth0", 0), ("eth0", 0x86DD)],
        ]
        fake = next(f for f in made if f.bound[-1][1] == packets.ETH_P_ARP)
        fake.theirs.send(arp(ROGUE, 1, b"\xc6\x12\x00\x01", VIP.packed))  # a question
        for _ in range(5):
            fake.theirs.send(packets.announcement(ROGUE, VIP))
        wait_until(lambda: watch.frames == 6, 2, message="every frame read")
        assert [r.kind for r in reports] == ["began"] and reports[0].mac == "02:49:4b:00:00:01"
        assert fake.sent == [packets.announcement(OURS, VIP)]  # one defence, our MAC
        assert watch.active("eth0", VIP) is not None
        wait_until(lambda: len(reports) == 2, 3, message="the conflict ends")
        assert reports[1].kind == "ended" and reports[1].reclaimed and reports[1].frames == 5
        assert announced == [("eth0", [VIP])]  # reclaimed with the kit's announcement
        assert watch.active("eth0", VIP) is None
        watch.unwatch("eth0", [VIP, VIP6])
        assert watch.listening() == both or watch.listening() == {("eth0", 4)}
        wait_until(lambda: watch.listening() == {("eth0", 4)}, 2, message="IPv6's closed")
        watch.unwatch("eth0", [OTHER])
        wait_until(lambda: watch.listening() == set(), 2, message="the socket closed")
        fake.theirs.close()
    finally:
        watch.close()


def test_the_listener_stays_closed_when_detection_is_off_and_ignores_addresses_not_held(
    tmp_path: Path,
) -> None:
    path = tmp_path / "tunables"
    path.write_text("IP_CONFLICT_DETECT=0\n")
    path.chmod(0o600)
    made: list[FakePacketSocket] = []

    def make_socket(family: int, kind: int, proto: int) -> Any:
        made.append(FakePacketSocket(OURS))
        return made[-1]

    watch = conflict.ConflictWatch(Tunables(path), lambda i, a: None, make_socket=make_socket)  # type: ignore[arg-type]
    try:
        watch.watch("eth0", VIP)
        time.sleep(0.1)  # the thread has had its turn (nothing may appear: not a synchronisation)
        assert made == [] and watch.listening() == set()
    finally:
        watch.close()
    held = conflict.ConflictWatch(
        Tunables(tmp_path / "none"),
        lambda i, a: None,
        still_held=lambda i, a: False,
        make_socket=make_socket,  # type: ignore[arg-type]
    )
    reports: list[conflict.Report] = []
    held.on_report = reports.append
    try:
        held.watch("eth0", VIP)
        wait_until(lambda: held.listening() == {("eth0", 4)}, 2, message="a socket on eth0")
        made[-1].theirs.send(packets.announcement(ROGUE, VIP))
        wait_until(lambda: held.frames == 1, 2, message="the frame read")
        assert reports == [] and made[-1].sent == []  # not configured here: not ours to defend
    finally:
        held.close()


# -- the engine's decisions -----------------------------------------------------------


def test_a_conflict_keeps_an_isp_resource_in_service_unprotected_and_nothing_else() -> None:
    assert engine_conflicts.on_began(ResourceState.ISP) is ResourceState.ISU
    assert engine_conflicts.on_began(ResourceState.ISU) is None  # already (maybe by an admin)
    assert engine_conflicts.on_began(ResourceState.OSU) is None
    assert engine_conflicts.on_began(None) is None


def test_only_a_resource_the_conflict_kept_isu_goes_back_to_isp_when_it_ends() -> None:
    kept = engine_conflicts.kept_reason("02:49:4b:00:00:01", "eth0")
    assert kept.startswith(engine_conflicts.PREFIX) and "defending" in kept
    assert engine_conflicts.on_ended(ResourceState.ISU, kept, again=False)
    assert not engine_conflicts.on_ended(ResourceState.ISU, kept, again=True)
    admin = "restore-and-recover disabled: no longer checked, address left as it is"
    assert not engine_conflicts.on_ended(ResourceState.ISU, admin, again=False)
    assert not engine_conflicts.on_ended(ResourceState.OSU, kept, again=False)


def test_a_peer_in_a_split_brain_is_neither_defended_against_nor_reclaimed_from(
    tmp_path: Path,
) -> None:
    path = tmp_path / "tunables"
    path.write_text("DEFEND_INTERVAL=0.2\n")
    path.chmod(0o600)
    made: list[FakePacketSocket] = []

    def make_socket(family: int, kind: int, proto: int) -> Any:
        made.append(FakePacketSocket(OURS))
        return made[-1]

    announced: list[Any] = []
    reports: list[conflict.Report] = []
    watch = conflict.ConflictWatch(
        Tunables(path),
        lambda i, a: announced.append(a),
        make_socket=make_socket,  # type: ignore[arg-type]
    )
    watch.on_report = reports.append
    watch.peer_macs["02:49:4b:00:00:01"] = "s2"  # as the engine learns it
    try:
        watch.watch("eth0", VIP)
        wait_until(lambda: watch.listening() == {("eth0", 4)}, 2, message="a socket on eth0")
        made[0].theirs.send(packets.announcement(ROGUE, VIP))
        wait_until(lambda: len(reports) == 2, 3, message="the conflict began and ended")
        assert [r.kind for r in reports] == ["began", "ended"] and not reports[1].reclaimed
        assert made[0].sent == [] and announced == []  # the cluster resolves it
    finally:
        watch.close()
