"""Cluster frames (R25, R30): a wrong key, a replayed frame and an oversized frame are
dropped and logged, and none of them changes anything."""

from __future__ import annotations

import json
import socket
import struct
from collections.abc import Iterator

import pytest

from ipkeeper.cluster import wire
from ipkeeper.cluster.keys import KeyRing
from ipkeeper.lab import daemons
from ipkeeper.lab import netns as ns
from ipkeeper.lab.topology import COMM_PORT, Topology
from ipkeeper.testing import wait_until
from ipkeeper.testing.labtools import LabServer, holders

pytestmark = pytest.mark.lab

VIP = "198.18.0.50"
LAB_KEY_ID = daemons.LAB_KEY_ID
TAG = f"ip-{VIP}"


class Impostor:
    """A TCP connection to s2's comm port from s1's eth1 address, as s1's path would be."""

    def __init__(self) -> None:
        self.sock = ns.socket_in("ipk-s1", socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(3)
        self.sock.bind(("198.18.1.11", 0))
        self.sock.connect(("198.18.1.12", COMM_PORT))

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_frame(self) -> dict:
        _, _, length, _ = wire.HEADER.unpack(self._exactly(wire.HEADER.size))
        return json.loads(self._exactly(length))

    def _exactly(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data

    def handshake(self, key: KeyRing) -> wire.Session:
        nonce = wire.new_nonce()
        self.send(wire.seal(key, wire.hello("s1", "s2", nonce)))
        reply = self.read_frame()
        session = wire.Session("s1", "s2", wire.session_id(nonce, reply["data"]["nonce"]))
        self.send(wire.seal(key, session.frame("ack")))
        return session

    def close(self) -> None:
        self.sock.close()


def deletion(resource_id: str) -> dict:
    """A message that, if accepted, would delete the resource on s2."""
    return {"docs": [], "tombstones": [{"id": resource_id, "version": 999, "tag": TAG}]}


@pytest.fixture
def setup(servers: dict[str, LabServer]) -> Iterator[tuple[LabServer, LabServer, str]]:
    s1, s2 = servers["s1"], servers["s2"]
    s1.json("create", "ip", "--address", VIP, "--netmask", "24")
    s1.json("extend", TAG, "--target", "s2")
    rid = (
        s1.json("show", TAG)["id"]
        if "id" in s1.json("show", TAG)
        else s1.status()["resources"][0]["id"]
    )
    s2.since = s2.mark()
    yield s1, s2, rid


def security_events(s2: LabServer) -> list[str]:
    return [e["message"] for e in s2.events(after=s2.since) if e["kind"] == "security"]


def unchanged(s1: LabServer, s2: LabServer) -> None:
    assert [r["tag"] for r in s2.status()["resources"]] == [TAG]
    assert s2.state(TAG, "s2") == "OSU" and s1.state(TAG) == "ISP"
    assert holders([s1, s2], VIP) == ["s1"]


def test_wrong_key_is_dropped_and_logged(
    setup: tuple[LabServer, LabServer, str], lab: Topology
) -> None:
    s1, s2, _ = setup
    impostor = Impostor()
    try:
        impostor.send(
            wire.seal(
                KeyRing.of(b"not the cluster key at all!!", LAB_KEY_ID),
                wire.hello("s1", "s2", wire.new_nonce()),
            )
        )
        wait_until(
            lambda: any("bad HMAC" in m for m in security_events(s2)), 3, message="bad HMAC logged"
        )
    finally:
        impostor.close()
    unchanged(s1, s2)


def test_oversized_frame_is_dropped_before_reading_it(
    setup: tuple[LabServer, LabServer, str],
) -> None:
    s1, s2, _ = setup
    impostor = Impostor()
    try:
        impostor.send(wire.MAGIC + struct.pack("!HI", LAB_KEY_ID, 64 << 20) + b"\0" * 32)
        wait_until(
            lambda: any("oversized frame" in m for m in security_events(s2)),
            3,
            message="oversized logged",
        )
    finally:
        impostor.close()
    unchanged(s1, s2)


def test_replayed_frames_are_dropped(
    setup: tuple[LabServer, LabServer, str], lab: Topology
) -> None:
    s1, s2, rid = setup
    key = wire.load_key(daemons.key_path(lab.node("s2")))
    first, second = Impostor(), Impostor()
    try:
        old = first.handshake(key)
        stale = wire.seal(key, old.frame("catalog.docs", deletion(rid)))
        first.close()
        new = second.handshake(key)
        again = new.frame("catalog.docs", deletion(rid))
        again["seq"] = 1  # the ack already used 1
        # Both at once, before the real s1 reconnects and replaces this session:
        # a frame of the earlier session, and one of this session with a used number.
        second.send(stale + wire.seal(key, again))
        wait_until(
            lambda: any("another session" in m for m in security_events(s2)),
            3,
            message="replay logged",
        )
        wait_until(
            lambda: any("not after" in m for m in security_events(s2)), 3, message="reuse logged"
        )
    finally:
        second.close()
    unchanged(s1, s2)
