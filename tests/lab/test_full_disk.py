"""A full disk is an alarm, not an outage (issue 11, item 7).

s2's state directory is put on a small disk of its own (a tmpfs in a private mount
namespace: lab/smalldisk.py) and filled to the last byte. Then an administrator's change
there is refused with one line, status and metrics raise the alarm, s1 crashes and s2
takes the VIP over all the same, repairs it in place when its address is deleted, and
once space returns everything kept in memory is written and the end of the alarm is an
event. Bounds: the takeover within 10 s of the crash, the repair within 5 s of the
deletion, the writes within 5 s of the space coming back.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ipkeeper.lab import faults, probe
from ipkeeper.lab.topology import Topology
from ipkeeper.testing import wait_until
from ipkeeper.testing.labtools import LabServer, addr_change

pytestmark = pytest.mark.lab

VIP = "198.18.0.50"
TAG = f"ip-{VIP}"
DISK = 16 << 20


@pytest.fixture
def standby_on_a_small_disk(
    servers: dict[str, LabServer], lab: Topology
) -> Iterator[tuple[LabServer, LabServer]]:
    s1, s2 = servers["s1"], servers["s2"]
    s1.json("create", "ip", "--address", VIP, "--netmask", "24")
    s1.json("extend", TAG, "--target", "s2")
    faults.small_disk(s2.node, DISK)
    wait_until(lambda: s2.state(TAG) == "OSU" and s2.status()["servers"][1]["alive"], 15,
               message="s2 back, on its small disk")  # fmt: skip
    s1.since, s2.since = s1.mark(), s2.mark()
    try:
        yield s1, s2
    finally:
        faults.free_disk(s2.node)
        faults.recover(s1.node)
        faults.normal_disk(s2.node)


def store(server: LabServer) -> dict[str, object]:
    found: dict[str, object] = server.status()["store"]
    return found


def metric(server: LabServer, name: str) -> float:
    import httpx

    transport = httpx.HTTPTransport(uds=str(server.socket))
    with httpx.Client(transport=transport, base_url="http://ipkeeperd", timeout=30) as http:
        text = http.get("/metrics").text
    return float(next(line.split()[-1] for line in text.splitlines() if line.startswith(name)))


def test_a_full_disk_stops_no_safety_action_and_is_an_alarm(
    standby_on_a_small_disk: tuple[LabServer, LabServer], lab: Topology
) -> None:
    s1, s2 = standby_on_a_small_disk
    assert faults.fill_disk(s2.node) > 0

    # An administrator's change needs the disk: refused in one line, nothing changed.
    database = store(s2)["path"]
    proc = s2.cli("set", TAG, "switchback", "automatic")
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(
        f"error: store: cannot write {database} (database or disk is full)"
    )
    proc = s2.cli("out-of-service", TAG)
    assert (proc.returncode, proc.stderr) == (
        1, f"error: store: cannot write {database} (database or disk is full): nothing was "
        "changed; checks, recovery and failover go on\n",
    ), proc.stderr  # fmt: skip
    assert s1.status()["resources"][0]["switchback"] == "intelligent" and s1.has_address(VIP)
    # The alarm: status (and its exit code), metrics.
    alarm = store(s2)
    assert alarm["writable"] is False and "database or disk is full" in str(alarm["reason"])
    assert metric(s2, "ipkeeper_store_writable") == 0.0
    assert s2.cli("status").returncode & 128

    # s1 crashes: s2 takes the VIP over, its disk still full.
    faults.crash(s1.node)
    wait_until(lambda: s2.has_address(VIP) and s2.state(TAG) == "ISP", 10,
               message="the takeover by s2")  # fmt: skip
    assert probe.ping(lab.node("client"), VIP, timeout=2) is not None
    # Its address deleted by hand: repaired in place.
    addr_change(s2.node, "eth0", f"{VIP}/24", add=False)
    wait_until(lambda: s2.has_address(VIP), 5, message="the local recovery on s2")
    wait_until(lambda: "recovered" in str(s2.status()["resources"][0]["servers"]["s2"]["reason"]),
               5, message="the recovery recorded")  # fmt: skip
    assert not store(s2)["writable"] and int(str(store(s2)["unsaved_states"])) >= 1

    # Space comes back: what waited is written, and the alarm's end is an event.
    faults.free_disk(s2.node)
    wait_until(lambda: store(s2)["writable"] and not store(s2)["waiting_events"], 5,
               message="s2's memory written")  # fmt: skip
    assert store(s2)["unsaved_states"] == 0 and metric(s2, "ipkeeper_store_writable") == 1.0
    events = s2.events(after=s2.since)
    messages = [f"{e['kind']}: {e['message']}" for e in events]
    assert any(m.startswith("store: cannot write") for m in messages), messages
    assert any(m.startswith("failover: ") for m in messages), messages
    assert any(e["kind"] == "check-failed" for e in events), messages
    ended = [m for m in messages if m.startswith("store: ") and "takes writes again" in m]
    assert len(ended) == 1 and "(database or disk is full" in ended[0], messages
    assert s2.cli("set", TAG, "switchback", "automatic").returncode == 0
