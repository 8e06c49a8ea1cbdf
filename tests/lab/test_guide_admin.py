"""What the guide's administrators do, in a three-server lab: extend a hierarchy with an
answer for every resource, create on any server, create with a ping list, the
ping list's warnings, a peer of another version, and the announcements a client
hears after a bring-up (issue 14)."""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from ipkeeper.cluster import wire
from ipkeeper.kits.ip import netlink
from ipkeeper.lab import control, daemons
from ipkeeper.lab import netns as ns
from ipkeeper.lab.topology import COMM_PORT, Topology
from ipkeeper.testing import wait_until
from ipkeeper.testing.capture import Announcements
from ipkeeper.testing.labtools import LabServer, addr_change, on
from tests.conftest import App

pytestmark = pytest.mark.lab

VIP_A = "198.18.2.60"  # a subnet new to every server: any interface that is up will do (R3)
VIP_B = "198.18.3.60"
IP_A, IP_B = f"ip-{VIP_A}", f"ip-{VIP_B}"


@pytest.fixture(scope="module")
def lab() -> Iterator[Topology]:
    """Three servers: extends go to a second and a third one."""
    control.down()
    try:
        yield control.up(3)
    finally:
        control.down()


def where(server: LabServer, address: str) -> tuple[str, int] | None:
    """The interface (and prefix) `address` is configured on, on `server`."""
    return on(server.node, lambda: netlink.where_is(ipaddress.ip_address(address)))


def _hierarchy(s1: LabServer, app: App) -> None:
    """An application over two VIPs on different interfaces of s1."""
    for address, ifname in ((VIP_A, "eth1"), (VIP_B, "eth0")):
        s1.json("create", "ip", "--address", address, "--netmask", "24",
                "--interface", ifname, "--no-broadcast-ping")  # fmt: skip
    s1.json(*app.create_args("app"))
    s1.json("depend", "app", IP_A)
    s1.json("depend", "app", IP_B)


def test_extend_answers_each_resource_and_defaults_to_the_template_s_interfaces(
    servers: dict[str, LabServer], app: App
) -> None:
    s1, s2 = servers["s1"], servers["s2"]
    _hierarchy(s1, app)
    assert where(s1, VIP_A) == ("eth1", 24) and where(s1, VIP_B) == ("eth0", 24)

    plan = s1.json("extend", "app", "--target", "s2", "--dry-run")
    assert plan["dry_run"] is True and plan["template"] == "s1"
    shown = {r["tag"]: r for r in plan["resources"]}
    assert [r["tag"] for r in plan["resources"]][-1] == "app"  # children first
    assert shown[IP_A]["interface"] == "eth1" and shown[IP_B]["interface"] == "eth0"
    assert shown[IP_A]["address"] == VIP_A and shown[IP_A]["netmask"] == "255.255.255.0"
    assert {c["name"] for c in shown[IP_A]["choices"]} == {"eth0", "eth1"}
    assert s1.state("app", "s2") is None, "a dry run extends nothing"

    # Swapped interfaces: each VIP lands where it was asked, and the CLI says so first.
    proc = s1.cli("extend", "app", "--target", "s2",
                  "--interface", f"{IP_A}=eth0", "--interface", f"{IP_B}=eth1")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "extend app from s1 to s2 (priority 10):"
    planned = [line for line in lines[1:3] if line.startswith(f"  {IP_A}: ")]  # either child first
    assert planned == [
        f"  {IP_A}: {VIP_A} netmask 255.255.255.0, eth1 on s1 -> eth0 on s2 "
        "(valid there: eth0, eth1)"
    ]
    assert lines[3] == "  app: app" and lines[-1].startswith("extended to s2: ")
    assert proc.stderr.count("its interface differs between servers") == 2
    assert s1.json("show", IP_A, "--server", "s2")["interface"] == "eth0"
    assert s1.json("show", IP_B, "--server", "s2")["interface"] == "eth1"
    assert s1.json("in-service", "app", "--server", "s2")["state"] == "ISP"
    assert where(s2, VIP_A) == ("eth0", 24) and where(s2, VIP_B) == ("eth1", 24)

    # Back to s1, off s2, and again with the defaults: the same interface names.
    s1.json("in-service", "app", "--server", "s1")
    s1.json("unextend", "app", "--server", "s2")
    done = s1.json("extend", "app", "--target", "s2")
    assert {r["tag"]: r["interface"] for r in done["resources"] if r["type"] == "ip"} == {
        IP_A: "eth1",
        IP_B: "eth0",
    }
    assert done["warnings"] == []
    assert s1.json("in-service", "app", "--server", "s2")["state"] == "ISP"
    assert where(s2, VIP_A) == ("eth1", 24) and where(s2, VIP_B) == ("eth0", 24)

    # An answer for something outside the hierarchy is refused, naming it.
    proc = s1.cli("extend", "app", "--target", "s3", "--interface", "nosuch=eth0")
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: resources: nosuch is not in the hierarchy of app")


def test_create_on_another_server_from_this_one_s_cli(servers: dict[str, LabServer]) -> None:
    s1, s2 = servers["s1"], servers["s2"]
    made = s1.json("create", "ip", "--address", "198.18.0.61", "--netmask", "24", "--server", "s2")
    assert made["state"] == "ISP" and made["tag"] == "ip-198.18.0.61"
    assert s2.has_address("198.18.0.61") and not s1.has_address("198.18.0.61")
    wait_until(lambda: s1.state("ip-198.18.0.61", "s2") == "ISP", 5, message="s1 sees it on s2")
    assert s1.state("ip-198.18.0.61", "s1") is None  # not extended to s1
    proc = s1.cli("create", "ip", "--address", "198.18.0.62", "--netmask", "24", "--server", "s9")
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        "error: server: s9 is not a server of this cluster (servers: s1, s2, s3)"
    )


def test_create_with_a_ping_list_where_nothing_answers_a_broadcast(
    servers: dict[str, LabServer], lab: Topology
) -> None:
    s1 = servers["s1"]
    s1.tune(IP_PINGTIME=0.2, IP_PINGTRIES=2)
    client = lab.node("client")
    addr_change(client, "eth0", "198.18.4.100/24", add=True)  # answers pings, not broadcasts
    try:
        args = (
            "create",
            "ip",
            "--address",
            "198.18.4.60",
            "--netmask",
            "24",
            "--interface",
            "eth0",
        )
        refused = s1.cli(*args)
        assert refused.returncode == 1
        reason = refused.stderr.strip()
        assert reason.startswith("error: pinglist: bring-up failed, nothing created:")
        assert "nobody answered a ping of 198.18.4.255" in reason
        assert "--pinglist" in reason and "--no-broadcast-ping" in reason
        assert "NOBCASTPING=1" in reason
        assert not s1.has_address("198.18.4.60") and s1.status()["resources"] == []

        made = s1.json(*args, "--pinglist", "198.18.4.100")
        assert made["state"] == "ISP"
        listed = s1.json("pinglist", "ip-198.18.4.60")
        assert listed["subnet"] == "198.18.4.0/24" and listed["addresses"] == ["198.18.4.100"]
        shown = wait_until(
            lambda: (p := s1.json("show", "ip-198.18.4.60")).get("last_check") and p,
            10,
            message="a health check",
        )
        assert shown["last_check"]["ok"], shown["last_check"]
        assert "ping list: 198.18.4.100 answered" in shown["last_check"]["reason"]
    finally:
        addr_change(client, "eth0", "198.18.4.100/24", add=False)


def test_a_cluster_server_s_address_in_the_ping_list_is_warned_about_once(
    servers: dict[str, LabServer],
) -> None:
    s1 = servers["s1"]
    s1.json("create", "ip", "--address", "198.18.0.63", "--netmask", "24")
    tag = "ip-198.18.0.63"
    added = s1.json("pinglist", tag, "add", "198.18.0.1", "198.18.0.12")
    assert len(added["warnings"]) == 1
    assert added["warnings"][0].startswith("198.18.0.12 is an address of s2, a server of")
    assert s1.json("pinglist", tag, "add", "198.18.0.12")["warnings"] == []  # already there
    assert s1.json("pinglist", tag, "remove", "198.18.0.12")["warnings"] == []
    # An address no comm path uses: s3 says it has it.
    (mine, theirs) = (
        s1.json("pinglist", tag, "add", a)["warnings"] for a in ("198.18.0.11", "2001:db8::13")
    )
    assert len(mine) == 1 and "of s1 (this server)" in mine[0]
    assert len(theirs) == 1 and theirs[0].startswith("2001:db8::13 is an address of s3,")
    # At creation too.
    made = s1.json("create", "ip", "--address", "198.18.0.64", "--netmask", "24",
                   "--pinglist", "198.18.0.13")  # fmt: skip
    assert [w for w in made["warnings"] if "198.18.0.13" in w] == [
        "198.18.0.13 is an address of s3, a server of this cluster: it always answers, "
        "whatever becomes of the VIP, so the check would prove nothing"
    ]


class OlderPeer:
    """s2 as a server of another ipkeeper version: it answers s1's handshakes on both comm
    paths, names `version` in its hello, and says nothing more."""

    def __init__(self, lab: Topology, version: str) -> None:
        self.node = lab.node("s2")
        self.keys = wire.load_key(daemons.key_path(self.node))
        self.version = version
        self.loop = asyncio.new_event_loop()
        self.handshakes = 0
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            first = await wire.read_frame(reader, self.keys)
            hello = wire.hello("s2", first["from"], wire.new_nonce(), echo=first["data"]["nonce"])
            hello["data"]["software"] = self.version
            writer.write(wire.seal(self.keys, hello))
            await writer.drain()
            await wire.read_frame(reader, self.keys)  # the ack
            self.handshakes += 1
            await reader.read()  # until s1 closes it
        except (OSError, asyncio.IncompleteReadError, wire.FrameError):
            pass
        finally:
            writer.close()

    def __enter__(self) -> OlderPeer:
        listeners = []
        for ifname in ("eth0", "eth1"):
            sock = ns.socket_in(self.node.namespace, socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((str(self.node.address(ifname).ip), COMM_PORT))
            listeners.append(sock)
        self._thread.start()
        self.servers = [
            asyncio.run_coroutine_threadsafe(
                asyncio.start_server(self._serve, sock=sock), self.loop
            ).result(5)
            for sock in listeners
        ]
        return self

    def __exit__(self, *_: object) -> None:
        async def stop() -> None:
            for server in self.servers:
                server.close()  # the port is free again for s2's own daemon
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()


def test_a_peer_of_another_version_is_shown_and_reported(
    servers: dict[str, LabServer], lab: Topology
) -> None:
    s1 = servers["s1"]
    since = s1.mark()
    ours = next(s for s in s1.status()["servers"] if s["local"])["version"]
    s2_seen = lambda: next(s for s in s1.status()["servers"] if s["name"] == "s2")  # noqa: E731
    assert s2_seen()["version"] == ours and not s2_seen()["version_mismatch"]
    daemons.stop(lab.node("s2"))
    with OlderPeer(lab, "0.0.9") as older:
        wait_until(lambda: older.handshakes >= 1, 10, message="s1 shook hands with the fake s2")
        shown = wait_until(
            lambda: (s := s2_seen())["version"] == "0.0.9" and s, 10, message="s2's version"
        )
        assert shown["version_mismatch"] is True
        said = [e for e in s1.events(after=since) if e["kind"] == "version"]
        assert [e["message"] for e in said] == [
            f"s2 runs ipkeeper 0.0.9, this server {ours}: every server of a cluster must "
            "run the same version"
        ]
        text = s1.cli("status").stdout
        assert "ipkeeper 0.0.9: not this server's" in text
    daemons.start(lab.node("s2"))
    wait_until(lambda: s2_seen()["version"] == ours, 20, message="s2 runs our version again")
    assert not s2_seen()["version_mismatch"]
    assert json.dumps(s1.events(after=since)).count("now runs ipkeeper") == 1


@pytest.mark.parametrize(("vip", "other", "prefix"), [
    ("198.18.0.65", "198.18.0.66", "24"),
    ("2001:db8::65", "2001:db8::66", "64"),
])  # fmt: skip
def test_the_client_hears_two_bursts_spaced_as_configured(
    servers: dict[str, LabServer], lab: Topology, vip: str, other: str, prefix: str
) -> None:
    s1 = servers["s1"]
    s1.tune(IP_GARP_COUNT=3, IP_GARP_INTERVAL=0.1, IP_GARP_REPEAT_DELAY=1)
    mac = lab.node("s1").port("eth0").mac
    with Announcements(lab.node("client"), limit=20) as heard:
        s1.json("create", "ip", "--address", vip, "--netmask", prefix)
        s1.json("create", "ip", "--address", other, "--netmask", prefix)
        # Taken down before its second burst: nothing more may come from s1 for it.
        wait_until(lambda: len(heard.times(other)) >= 3, 5, message="the first burst of the other")
        s1.json("out-of-service", f"ip-{other}")
        taken_down = time.monotonic()
        wait_until(
            lambda: [len(b) for b in heard.bursts(vip, 0.5)] == [3, 3], 10, message="both bursts"
        )
    bursts = heard.bursts(vip, gap=0.5)
    assert [len(b) for b in bursts] == [3, 3], bursts
    for burst in bursts:
        gaps = [b - a for a, b in itertools.pairwise(burst)]
        assert all(0.08 <= g <= 0.6 for g in gaps), gaps  # IP_GARP_INTERVAL=0.1
    assert 0.95 <= bursts[1][0] - bursts[0][0] <= 2.0  # IP_GARP_REPEAT_DELAY=1
    assert {m for _, a, m in heard.heard if a == str(ipaddress.ip_address(vip))} == {mac}
    # The second burst of the other may have begun before the take-down (a loaded
    # machine's CLI is slow); none of it may come after.
    assert [t for t in heard.times(other) if t > taken_down + 0.05] == [], heard.times(other)
