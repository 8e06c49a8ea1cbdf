"""Rotating the cluster key live (R30), as SECURITY.md tells an administrator to: one
server after the other, each step everywhere before the next; no comm path goes down,
no frame is dropped, no VIP moves, and the old key is refused afterwards."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

from ipkeeper.cluster import wire
from ipkeeper.cluster.keys import KeyRing
from ipkeeper.lab import daemons
from ipkeeper.lab.topology import Topology
from ipkeeper.testing import wait_until
from ipkeeper.testing.labtools import LabServer, holders
from tests.lab.test_cluster_security import Impostor, security_events

pytestmark = pytest.mark.lab

VIP = "198.18.0.50"
TAG = f"ip-{VIP}"


def replace(path: Path, text: str) -> None:
    """Write the key file as SECURITY.md says: a new private file renamed over the old."""
    new = path.with_name(path.name + ".new")
    fd = os.open(new, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    new.rename(path)


def keys_of(server: LabServer) -> tuple[int, list[int]]:
    keys = server.status()["security"]["cluster_keys"]
    assert keys["error"] is None
    return keys["primary"], keys["accepted"]


def frames_under(server: LabServer, key_id: int) -> int:
    """Authentic frames `server` has received under key `key_id`."""
    received = server.status()["security"]["cluster_keys"]["frames_received"]
    return int(received.get(str(key_id), 0))


def heard_under(server: LabServer, key_id: int) -> None:
    """Wait until `server` receives new frames under `key_id` from its peer."""
    before = frames_under(server, key_id)
    wait_until(
        lambda: frames_under(server, key_id) > before + 10,
        5,
        message=f"{server.name} hears frames under key {key_id}",
    )


def test_rotate_the_cluster_key_on_both_servers_one_after_the_other(
    pair: tuple[LabServer, LabServer], lab: Topology
) -> None:
    s1, s2 = pair
    s1.json("create", "ip", "--address", VIP, "--netmask", "24")
    s1.json("extend", TAG, "--target", "s2")
    s1.since, s2.since = s1.mark(), s2.mark()
    files = {s.name: daemons.key_path(lab.node(s.name)) for s in (s1, s2)}
    old_id, old_key = KeyRing.load(files["s1"]).primary()
    new_id, new_key = old_id + 1, secrets.token_hex(32)
    old_line = f"{old_id} {old_key.hex()}\n"
    new_line = f"{new_id} {new_key}\n"

    steps = [
        (old_line + new_line, (old_id, sorted([old_id, new_id]))),  # 1: accept the new key
        (new_line + old_line, (new_id, sorted([old_id, new_id]))),  # 2: send under it
        (new_line, (new_id, [new_id])),  # 3: retire the old one
    ]
    peer = {"s1": s2, "s2": s1}
    for number, (text, expected) in enumerate(steps, start=1):
        for server in (s1, s2):
            replace(files[server.name], text)
            assert keys_of(server) == expected  # re-read at once, no restart
            # Frames go on flowing under the primary in force, which the peer accepts.
            heard_under(peer[server.name], expected[0] if number > 1 else old_id)

    # Nothing happened to the cluster: no path down, no frame dropped, no VIP moved.
    for server in (s1, s2):
        kinds = {e["kind"] for e in server.events(after=server.since)}
        assert not kinds & {"path", "membership", "security", "failover"}, kinds
    assert s1.state(TAG) == "ISP" and s2.state(TAG, "s2") == "OSU"
    assert holders([s1, s2], VIP) == ["s1"]

    # The old key is refused now; the new one is what the servers speak.
    impostor = Impostor()
    try:
        impostor.send(
            wire.seal(KeyRing.of(old_key, old_id), wire.hello("s1", "s2", wire.new_nonce()))
        )
        wait_until(
            lambda: any(f"unknown key id {old_id}" in m for m in security_events(s2)),
            3,
            message="the old key refused",
        )
    finally:
        impostor.close()
    assert holders([s1, s2], VIP) == ["s1"]
