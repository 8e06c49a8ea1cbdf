"""The IP kit against the real kernel in the lab (R6-R10, R13-R15), with real traffic."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from ipkeeper.config.tunables import Tunables
from ipkeeper.kits.ip import netlink
from ipkeeper.kits.ip.kit import IPKit
from ipkeeper.kits.ip.params import IPAddress
from ipkeeper.lab import faults, probe
from ipkeeper.lab import netns as ns
from ipkeeper.lab.topology import SWITCH_NS, Topology
from ipkeeper.model.resource import Instance
from ipkeeper.testing import wait_until
from ipkeeper.testing.labtools import addr_change, link_set, neighbour_mac, on, write_tunables

pytestmark = pytest.mark.lab

VIP = "198.18.0.50"
VIP6 = "2001:db8::50"


class Setup:
    """A kit per server sharing one tunables file and per-server ping lists."""

    def __init__(self, lab: Topology, tunables_path: Path) -> None:
        self.lab = lab
        self.path = tunables_path
        self.ping_lists: dict[str, list[IPAddress]] = {}
        self.kits = {
            s.name: IPKit(Tunables(tunables_path), self._lister(s.name)) for s in lab.servers
        }

    def _lister(self, server: str):
        return lambda spec: self.ping_lists.get(server, [])

    def tune(self, **values: object) -> None:
        write_tunables(self.path, **values)

    def do(self, server: str, action: str, inst: Instance):
        kit = self.kits[server]
        return on(self.lab.node(server), lambda: getattr(kit, action)(inst))


def ip_instance(address: str = VIP, prefix: int = 24, **props: object) -> Instance:
    spec = {"address": address, "prefix": prefix, "interface": "eth0", **props}
    return Instance(f"ip-{address}", "ip", spec)


@pytest.fixture
def kit(lab: Topology, tmp_path: Path) -> Iterator[Setup]:
    setup = Setup(lab, tmp_path / "ipkeeper")
    setup.tune(IP_PINGTIME=0.3, IP_PINGTRIES=2)
    yield setup
    for server in lab.servers:
        for inst in (ip_instance(), ip_instance(VIP6, 64)):
            setup.do(server.name, "remove", inst)
    ns.write_sysctl("ipk-router", "net.ipv4.icmp_echo_ignore_broadcasts", "0")
    for namespace, ifname in ((SWITCH_NS, "s1-eth0"), ("ipk-s1", "eth0")):
        link_set(namespace, ifname, True)


def test_client_reaches_the_vip_and_the_announcement_moves_it(kit: Setup, lab: Topology) -> None:
    client = lab.node("client")
    s1_mac = lab.node("s1").port("eth0").mac
    s2_mac = lab.node("s2").port("eth0").mac
    result = kit.do("s1", "restore", ip_instance())
    assert result.ok, result.reason
    assert set(result.timings) >= {"unique", "add", "announce", "check"}
    reply = probe.ping(client, VIP)
    assert reply is not None and str(reply.responder) == VIP
    assert neighbour_mac(client, VIP) == s1_mac

    assert kit.do("s1", "remove", ip_instance()).ok
    assert kit.do("s2", "restore", ip_instance()).ok
    # The client sends nothing: only s2's gratuitous ARP can have moved the entry.
    wait_until(lambda: neighbour_mac(client, VIP) == s2_mac, 1.0, message="entry moved to s2")
    reply = probe.ping(client, VIP)
    assert reply is not None and str(reply.responder) == VIP


def test_ipv6_vip_end_to_end(kit: Setup, lab: Topology) -> None:
    client = lab.node("client")
    inst = ip_instance(VIP6, 64)
    result = kit.do("s1", "restore", inst)
    assert result.ok, result.reason
    assert probe.ping(client, VIP6) is not None
    assert neighbour_mac(client, VIP6) == lab.node("s1").port("eth0").mac
    assert kit.do("s1", "remove", inst).ok
    assert kit.do("s2", "restore", inst).ok
    wait_until(
        lambda: neighbour_mac(client, VIP6) == lab.node("s2").port("eth0").mac,
        1.0,
        message="IPv6 neighbour entry moved to s2",
    )
    assert probe.ping(client, VIP6) is not None


def test_duplicate_on_the_network_is_refused_and_leaves_no_trace(kit: Setup, lab: Topology) -> None:
    router = lab.node("router")
    addr_change(router, "eth0", f"{VIP}/24", add=True)
    try:
        result = kit.do("s1", "restore", ip_instance())
        assert not result.ok
        assert result.step == "unique"
        assert VIP in result.reason and router.port("eth0").mac in result.reason
        assert on(lab.node("s1"), lambda: netlink.where_is(ip(VIP))) is None
        # Going ahead with a real duplicate: the router now drops echo requests
        # from its own address, so only a check without broadcast ping passes.
        kit.tune(NOIPUNIQUE=1, NOBCASTPING=1)
        result = kit.do("s1", "restore", ip_instance())
        assert result.ok, result.reason
        assert "unique" not in result.timings
        assert on(lab.node("s1"), lambda: netlink.where_is(ip(VIP))) == ("eth0", 24)
    finally:
        addr_change(router, "eth0", f"{VIP}/24", add=False)


def test_ipv6_duplicate_is_detected(kit: Setup, lab: Topology) -> None:
    assert kit.do("s1", "restore", ip_instance(VIP6, 64)).ok
    result = kit.do("s2", "restore", ip_instance(VIP6, 64))
    assert result.step == "unique"
    assert lab.node("s1").port("eth0").mac in result.reason


def test_check_fails_when_the_address_is_deleted_by_hand_and_recover_repairs_it(
    kit: Setup, lab: Topology
) -> None:
    s1 = lab.node("s1")
    assert kit.do("s1", "restore", ip_instance()).ok
    addr_change(s1, "eth0", f"{VIP}/24", add=False)
    result = kit.do("s1", "quick_check", ip_instance())
    assert (result.step, result.reason) == ("address", f"address: {VIP} is not configured on eth0")
    recovered = kit.do("s1", "recover", ip_instance())
    assert recovered.ok, recovered.reason
    assert kit.do("s1", "quick_check", ip_instance()).ok
    assert probe.ping(lab.node("client"), VIP) is not None


def test_check_fails_at_the_link_step_unless_link_checks_are_off(kit: Setup, lab: Topology) -> None:
    assert kit.do("s1", "restore", ip_instance()).ok
    link_set(SWITCH_NS, "s1-eth0", False)
    result = kit.do("s1", "quick_check", ip_instance())
    assert result.step == "link"
    assert result.reason == "link: eth0 has no carrier (link down)"
    kit.tune(IP_NOLINKCHECK=1, IP_PINGTIME=0.2, IP_PINGTRIES=1)
    result = kit.do("s1", "quick_check", ip_instance())
    assert result.step == "reachability", result.reason
    link_set(SWITCH_NS, "s1-eth0", True)
    link_set("ipk-s1", "eth0", False)
    kit.tune(IP_PINGTIME=0.2, IP_PINGTRIES=1)
    assert (
        kit.do("s1", "quick_check", ip_instance()).reason == "link: eth0 is administratively down"
    )


def test_reachability_by_broadcast_saved_responder_and_ping_list(kit: Setup, lab: Topology) -> None:
    first = kit.do("s1", "restore", ip_instance())
    assert first.ok and first.details == {"responder": "198.18.0.1", "saved": False}
    again = kit.do("s1", "quick_check", ip_instance())
    assert again.reason == "saved responder 198.18.0.1 answered"
    assert again.details["saved"] is True

    ns.write_sysctl("ipk-router", "net.ipv4.icmp_echo_ignore_broadcasts", "1")
    kit.tune(IP_NOSAVEREPLY=1, IP_PINGTIME=0.2, IP_PINGTRIES=2)
    silent = kit.do("s1", "quick_check", ip_instance())
    assert silent.step == "reachability"
    assert "nobody answered a ping of 198.18.0.255 from 198.18.0.50 (2 tries)" in silent.reason

    kit.ping_lists["s1"] = [ip("198.18.0.97"), ip("198.18.0.1")]
    listed = kit.do("s1", "quick_check", ip_instance())
    assert listed.ok and listed.details["responder"] == "198.18.0.1"

    kit.ping_lists["s1"] = [ip("198.18.0.97"), ip("198.18.0.98")]
    dead = kit.do("s1", "quick_check", ip_instance())
    assert dead.step == "reachability"
    assert "no address of the ping list answered (198.18.0.97, 198.18.0.98; 2 tries)" in dead.reason

    kit.ping_lists["s1"] = []
    kit.tune(NOBCASTPING=1)
    assert kit.do("s1", "quick_check", ip_instance()).ok


def ip(text: str) -> IPAddress:
    return ipaddress.ip_address(text)


def connect_and_see_source(lab: Topology) -> str:
    """s1 opens a TCP connection to the client; the source address the client sees."""
    listener = ns.socket_in("ipk-client", socket.AF_INET, socket.SOCK_STREAM)
    conn = ns.socket_in("ipk-s1", socket.AF_INET, socket.SOCK_STREAM)
    with listener, conn:
        listener.bind(("198.18.0.100", 0))
        listener.listen(1)
        conn.settimeout(2)
        conn.connect(listener.getsockname())
        peer, addr = listener.accept()
        peer.close()
        return str(addr[0])


def test_source_address_setting(kit: Setup, lab: Topology) -> None:
    assert kit.do("s1", "restore", ip_instance(source_address=False)).ok
    assert connect_and_see_source(lab) == "198.18.0.11"
    assert kit.do("s1", "remove", ip_instance()).ok

    assert kit.do("s1", "restore", ip_instance(source_address=True)).ok
    assert connect_and_see_source(lab) == VIP
    assert kit.do("s1", "remove", ip_instance(source_address=True)).ok
    # The subnet route survives the VIP's removal and uses the server's own address again.
    assert connect_and_see_source(lab) == "198.18.0.11"


def test_taking_a_subnet_s_first_vip_down_leaves_the_others_up(kit: Setup, lab: Topology) -> None:
    # 198.18.4.0/22 is new on s1: its first VIP is the kernel's primary there, and
    # deleting a primary deletes every secondary unless promote_secondaries is on.
    first, second = ip_instance("198.18.4.10", 22), ip_instance("198.18.4.11", 22)
    try:
        assert all(r.ok for r in kit.do("s1", "restore_many", [first, second]))  # type: ignore[arg-type]
        assert kit.do("s1", "remove", first).ok
        assert kit.do("s1", "quick_check", second).ok
        assert on(lab.node("s1"), lambda: netlink.where_is(ip("198.18.4.11"))) is not None
    finally:
        kit.do("s1", "remove", second)


def test_restore_and_remove_are_idempotent(kit: Setup, lab: Topology) -> None:
    assert kit.do("s1", "restore", ip_instance()).ok
    again = kit.do("s1", "restore", ip_instance())
    assert again.ok and "adopted" in again.reason
    assert kit.do("s1", "remove", ip_instance()).ok
    assert kit.do("s1", "remove", ip_instance()).reason == f"{VIP} already absent"


def test_restore_recover_disabled_brings_nothing_up(kit: Setup, lab: Topology) -> None:
    inst = ip_instance(restore_recover=False)
    assert kit.do("s1", "restore", inst).ok
    assert probe.ping(lab.node("client"), VIP, timeout=0.2) is None
    assert kit.do("s1", "quick_check", inst).reason == "not checked (restore-and-recover disabled)"


def test_failed_check_after_bring_up_removes_the_address(kit: Setup, lab: Topology) -> None:
    ns.write_sysctl("ipk-router", "net.ipv4.icmp_echo_ignore_broadcasts", "1")
    kit.tune(IP_PINGTIME=0.1, IP_PINGTRIES=1)
    result = kit.do("s1", "restore", ip_instance())
    assert not result.ok and result.step == "reachability"
    assert "address removed" in result.reason
    assert probe.ping(lab.node("client"), VIP, timeout=0.2) is None


def test_a_failed_bring_up_never_removes_an_address_it_did_not_add(
    kit: Setup, lab: Topology
) -> None:
    """Issue 11, item 12: the address was there before the bring-up (a server's own, say):
    the failed check leaves it as it was, and says so."""
    addr_change(lab.node("s1"), "eth0", f"{VIP}/24", add=True)
    ns.write_sysctl("ipk-router", "net.ipv4.icmp_echo_ignore_broadcasts", "1")
    kit.tune(IP_PINGTIME=0.1, IP_PINGTRIES=1)
    result = kit.do("s1", "restore", ip_instance())
    assert not result.ok and result.step == "reachability"
    assert on(lab.node("s1"), lambda: netlink.has_address("eth0", ipaddress.ip_address(VIP)))
    assert result.details.get("adopted") is True
    assert "the address was there before and is left as it was" in result.reason


def test_many_vips_of_a_subnet_go_newest_first_so_the_primary_goes_last(
    kit: Setup, lab: Topology
) -> None:
    # Deleting a subnet's primary while secondaries remain makes the kernel promote
    # one and re-add the routes of all the others: quadratic at a thousand VIPs.
    vips = [ipaddress.ip_interface(f"198.18.4.{20 + i}/22") for i in range(5)]
    items = [("eth0", v) for v in vips]
    node = lab.node("s1")
    try:
        assert on(node, lambda: netlink.add_addresses(items)) == [None] * 5
        order = on(node, lambda: netlink._deletion_order(items))
        assert order == [4, 3, 2, 1, 0]
        assert on(node, lambda: netlink.delete_addresses(items)) == [None] * 5
        assert not set(on(node, lambda: netlink.addresses_on("eth0"))) & set(vips)
    finally:
        on(node, lambda: netlink.delete_addresses(items))


def test_host_copy_follows_an_address_carried_with_two_prefixes(kit: Setup, lab: Topology) -> None:
    node = lab.node("s1")
    host = on(node, lambda: netlink.HostNet().start())
    wide, narrow = (
        ipaddress.ip_interface("198.18.4.30/22"),
        ipaddress.ip_interface("198.18.4.30/24"),
    )
    try:
        on(node, lambda: netlink.add_addresses([("eth0", wide), ("eth0", narrow)]))
        wait_until(lambda: host.has_address("eth0", wide.ip), 5, message="both seen")
        on(node, lambda: netlink.delete_addresses([("eth0", narrow)]))
        wait_until(
            lambda: narrow not in host.addresses_on("eth0"), 5, message="the narrow one gone"
        )
        assert host.has_address("eth0", wide.ip)  # still carried with the other prefix
        on(node, lambda: netlink.delete_addresses([("eth0", wide)]))
        wait_until(lambda: not host.has_address("eth0", wide.ip), 5, message="gone")
    finally:
        host.stop()
        on(node, lambda: netlink.delete_addresses([("eth0", wide), ("eth0", narrow)]))


def test_host_copy_tells_its_listeners_of_a_lost_carrier(kit: Setup, lab: Topology) -> None:
    # The monitor checks a VIP at once when its link changes: it hears of it here.
    node = lab.node("s1")
    host = on(node, lambda: netlink.HostNet().start())
    told: list[netlink.HostChange] = []
    host.listeners.append(told.extend)
    try:
        faults.set_switch_port(node, "eth0", False)
        wait_until(
            lambda: any(c.ifname == "eth0" and c.address is None for c in told), 5, message="told"
        )
        assert not host.link_state("eth0").carrier
        faults.set_switch_port(node, "eth0", True)
        wait_until(lambda: host.link_state("eth0").carrier, 5, message="carrier back")
    finally:
        faults.set_switch_port(node, "eth0", True)
        host.stop()


def test_a_standby_tests_the_subnet_from_its_own_address(kit: Setup, lab: Topology) -> None:
    """Issue 11, item 8: before a VIP nobody answers for is handed over, each standby
    pings its subnet from its own address (198.18.0.12 on s2), with its own ping list."""
    from ipkeeper.engine.decide import no_responder

    found = kit.do("s2", "reach_from_here", ip_instance())
    assert found.ok and "198.18.0.1 answered" in found.reason, found.reason
    kit.ping_lists["s2"] = [ipaddress.ip_address("198.18.0.1")]
    assert kit.do("s2", "reach_from_here", ip_instance()).ok
    with faults.no_responder(lab):
        listed = kit.do("s2", "reach_from_here", ip_instance())
        assert no_responder(listed), listed.reason
        assert "no address of the ping list answered (198.18.0.1" in listed.reason
        kit.ping_lists["s2"] = []
        silent = kit.do("s2", "reach_from_here", ip_instance())
        assert no_responder(silent) and silent.details["subnet"] == "198.18.0.0/24"
        assert "from 198.18.0.12" in silent.reason, silent.reason
        # A bring-up fails the same way, and its result says why.
        held = kit.do("s1", "restore", ip_instance())
        assert no_responder(held) and "address removed" in held.reason, held.reason
    assert kit.do("s1", "restore", ip_instance()).ok
    with faults.no_responder(lab):
        # So does the holder's recovery, which leaves the address it found in place.
        recovered = kit.do("s1", "recover", ip_instance())
        assert no_responder(recovered), recovered.reason
        assert on(lab.node("s1"), lambda: netlink.has_address("eth0", ipaddress.ip_address(VIP)))
    assert kit.do("s2", "reach_from_here", ip_instance()).ok  # the router answers again
    elsewhere = kit.do("s2", "reach_from_here", ip_instance("198.18.5.50"))
    assert elsewhere.step == "source" and not no_responder(elsewhere), elsewhere.reason
