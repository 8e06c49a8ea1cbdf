"""Announcement schedules (kits/ip/announce.py): two bursts, one plan per address, paced."""

from __future__ import annotations

import ipaddress
import threading
from pathlib import Path

import pytest

from ipkeeper.config.tunables import Tunables
from ipkeeper.kits.ip import packets
from ipkeeper.kits.ip.announce import Announcer, Schedule

A = ipaddress.ip_address("198.18.0.50")
B = ipaddress.ip_address("198.18.0.51")
A6 = ipaddress.ip_address("2001:db8::50")
MAC = bytes.fromhex("02494b00000b")


def test_two_bursts_spaced_as_asked() -> None:
    plan = Schedule()
    plan.add(("eth0", A), 100.0, count=3, interval=0.2, repeat_delay=5.0)
    # The first announcement was sent by the bring-up: two more, then three 5 s later.
    assert plan.planned(("eth0", A)) == pytest.approx([100.2, 100.4, 105.0, 105.2, 105.4])
    plan.add(("eth0", B), 100.0, count=1, interval=0.2, repeat_delay=0)
    assert plan.planned(("eth0", B)) == []
    assert plan.pending() == {("eth0", A)}


def test_a_new_bring_up_replaces_the_plan_instead_of_adding_one() -> None:
    plan = Schedule()
    plan.add(("eth0", A), 100.0, count=3, interval=0.2, repeat_delay=5.0)
    plan.add(("eth0", A), 101.0, count=3, interval=0.2, repeat_delay=5.0)
    assert plan.planned(("eth0", A)) == pytest.approx([101.2, 101.4, 106.0, 106.2, 106.4])


def test_due_sends_each_repeat_once_and_says_when_to_wake() -> None:
    plan = Schedule()
    plan.add(("eth0", A), 0.0, count=2, interval=0.1, repeat_delay=1.0)
    assert plan.due(0.05) == ([], pytest.approx(0.1))
    sent, wake = plan.due(0.1)
    assert sent == [("eth0", A)] and wake == pytest.approx(1.0)
    assert plan.due(0.5) == ([], pytest.approx(1.0))
    sent, wake = plan.due(1.0)
    assert sent == [("eth0", A)] and wake == pytest.approx(1.1)
    sent, wake = plan.due(1.2)
    assert sent == [("eth0", A)] and wake is None
    assert plan.pending() == set()


def test_a_late_repeat_keeps_the_spacing_of_the_rest() -> None:
    plan = Schedule()
    plan.add(("eth0", A), 0.0, count=3, interval=0.1, repeat_delay=0)
    plan.due(0.35)  # the thread woke 0.25 s late
    assert plan.planned(("eth0", A)) == pytest.approx([0.45])


def test_repeats_of_one_interface_are_paced() -> None:
    plan = Schedule(rate=100.0, burst=10)
    keys = [("eth0", ipaddress.ip_address(f"198.18.0.{i}")) for i in range(50, 80)]
    for key in keys:
        plan.add(key, 0.0, count=2, interval=0.1, repeat_delay=0)
    plan.add(("eth1", A), 0.0, count=2, interval=0.1, repeat_delay=0)
    sent, wake = plan.due(0.1)
    # Ten on eth0 (its burst), and eth1's own repeat: interfaces are paced apart.
    assert len([k for k in sent if k[0] == "eth0"]) == 10 and ("eth1", A) in sent
    assert wake == pytest.approx(0.11)
    sent, _ = plan.due(0.15)  # 50 ms at 100 frames/s: five more
    assert len(sent) == 5
    total = 15
    now = 0.15
    while plan.pending():
        now += 0.01
        total += len(plan.due(now)[0])
    assert total == 30 and now == pytest.approx(0.30, abs=0.015)  # 20 after the burst, 0.2 s


class FakeSocket:
    """A packet socket that records what it sends (no kernel involved)."""

    def __init__(self, log: list[tuple[str, bytes]], *_: object) -> None:
        self.log = log
        self.ifname = ""
        self.closed = threading.Event()

    def setsockopt(self, *_: object) -> None:
        pass

    def bind(self, address: tuple[str, int]) -> None:
        self.ifname = address[0]

    def getsockname(self) -> tuple[str, int, int, int, bytes]:
        return (self.ifname, 0, 0, 0, MAC)

    def send(self, frame: bytes) -> int:
        self.log.append((self.ifname, frame))
        return len(frame)

    def close(self) -> None:
        self.closed.set()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _announcer(tmp_path: Path, **tunables: object) -> tuple[Announcer, list[tuple[str, bytes]]]:
    path = tmp_path / "tunables"
    path.write_text("".join(f"{k}={v}\n" for k, v in tunables.items()))
    sent: list[tuple[str, bytes]] = []
    made: list[FakeSocket] = []

    def make(*args: object) -> FakeSocket:
        made.append(FakeSocket(sent))
        return made[-1]

    announcer = Announcer(Tunables(path), make_socket=make, clock=FakeClock())  # type: ignore[arg-type]
    return announcer, sent


def test_the_first_announcement_leaves_at_once_and_the_repeats_are_planned(tmp_path: Path) -> None:
    announcer, sent = _announcer(tmp_path, IP_GARP_COUNT=3, IP_GARP_INTERVAL=0.2)
    try:
        announcer.announce("eth0", [A, A6])
        assert sent == [
            ("eth0", packets.announcement(MAC, A)),
            ("eth0", packets.announcement(MAC, A6)),
        ]
        assert announcer.planned("eth0", A) == pytest.approx([1000.2, 1000.4, 1005, 1005.2, 1005.4])
        announcer.forget("eth0", [A])
        assert announcer.planned("eth0", A) == [] and len(announcer.planned("eth0", A6)) == 5
    finally:
        announcer.close()


def test_repeats_leave_from_the_thread_and_stop_when_the_address_is_gone(tmp_path: Path) -> None:
    path = tmp_path / "tunables"
    path.write_text("IP_GARP_COUNT=3\nIP_GARP_INTERVAL=0.001\nIP_GARP_REPEAT_DELAY=0\n")
    sent: list[tuple[str, bytes]] = []
    held = {A: True}
    announcer = Announcer(
        Tunables(path),
        still_held=lambda ifname, address: held.get(address, False),
        make_socket=lambda *a: FakeSocket(sent),  # type: ignore[arg-type,return-value]
    )
    try:
        announcer.announce("eth0", [A])
        from ipkeeper.testing import wait_until

        wait_until(lambda: len(sent) == 3, 5, message="both repeats sent")
        held[A] = False
        announcer.announce("eth0", [A])  # sent now; its repeats find it gone
        wait_until(lambda: not announcer.planned("eth0", A), 5, message="plan dropped")
        assert len(sent) == 4
    finally:
        announcer.close()


def test_a_socket_of_an_interface_made_again_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "tunables"
    path.write_text("IP_GARP_COUNT=2\nIP_GARP_INTERVAL=10\n")
    sent: list[tuple[str, bytes]] = []
    made: list[FakeSocket] = []

    def make(*_: object) -> FakeSocket:
        made.append(FakeSocket(sent))
        return made[-1]

    announcer = Announcer(Tunables(path), make_socket=make, clock=FakeClock())  # type: ignore[arg-type]
    try:
        announcer.announce("eth0", [A])
        assert len(made) == 1  # kept open for the repeats

        def gone(frame: bytes) -> int:
            raise OSError(6, "No such device or address")

        made[0].send = gone  # type: ignore[method-assign]
        announcer.announce("eth0", [B])
        assert len(made) == 2 and sent[-1] == ("eth0", packets.announcement(MAC, B))
        assert made[0].closed.wait(5)
    finally:
        announcer.close()
