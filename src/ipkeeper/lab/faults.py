"""Faults to inject in the lab, as they happen to real servers."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pyroute2 import IPRoute

from ipkeeper.kits.ip import packets
from ipkeeper.lab import control, daemons
from ipkeeper.lab import netns as ns
from ipkeeper.lab.topology import COMM_PORT, SWITCH_NS, Node, Topology, veth_name


def set_switch_port(node: Node, ifname: str, up: bool) -> None:
    """Plug or unplug a node's cable at the switch (its interface loses carrier)."""
    name = veth_name(node, node.port(ifname))

    def flip() -> None:
        with IPRoute() as ipr:
            ipr.link("set", index=ipr.link_lookup(ifname=name)[0], state="up" if up else "down")

    # On a thread of its own inside the switch namespace: pyroute2 cannot run on
    # a thread whose asyncio loop is running (a browser test's, for one).
    ns.call_in(SWITCH_NS, flip)


def unplug(node: Node, *ifnames: str) -> None:
    """Pull the cables of the given interfaces (all of them when none is named)."""
    for ifname in ifnames or tuple(p.ifname for p in node.ports):
        set_switch_port(node, ifname, False)


def plug(node: Node, *ifnames: str) -> None:
    """Put the cables back."""
    for ifname in ifnames or tuple(p.ifname for p in node.ports):
        set_switch_port(node, ifname, True)


@contextlib.contextmanager
def comm_paths_cut(node: Node, peer_lan_address: str) -> Iterator[None]:
    """Every comm path between `node` and one peer cut while the LAN stays up: eth1
    unplugged, and TCP to the peer's LAN address blackholed (ARP still flows)."""

    def route(op: str) -> None:
        with IPRoute() as ipr:
            ipr.route(op, dst=f"{peer_lan_address}/32", type="blackhole")

    unplug(node, "eth1")
    ns.call_in(node.namespace, lambda: route("add"))
    try:
        yield
    finally:
        ns.call_in(node.namespace, lambda: route("del"))
        plug(node, "eth1")


PARTITION_TABLE = "ipk_partition"


@contextlib.contextmanager
def partial_partition(a: Node, b: Node) -> Iterator[None]:
    """`a` and `b` cannot reach each other on any network, at layer 2 (no frame of
    theirs, ARP included, crosses between their switch ports), while both still reach
    every other node: a partial partition, as a broken trunk or a bad ACL makes it."""
    rules = [f"table bridge {PARTITION_TABLE} {{", "  chain cut {",
             "    type filter hook forward priority 0; policy accept;"]  # fmt: skip
    for port in a.ports:
        theirs = [p for p in b.ports if p.bridge == port.bridge]
        for other in theirs:
            x, y = veth_name(a, port), veth_name(b, other)
            rules += [
                f'    iifname "{x}" oifname "{y}" drop',
                f'    iifname "{y}" oifname "{x}" drop',
            ]
    rules += ["  }", "}", ""]
    _nft_in(SWITCH_NS, ["-f", "-"], "\n".join(rules))
    try:
        yield
    finally:
        _nft_in(SWITCH_NS, ["delete", "table", "bridge", PARTITION_TABLE], check=False)


LOSS_TABLE = "ipk_loss"


def lossy(node: Node, percent: int) -> None:
    """Drop `percent` % of the comm-path packets `node` sends, at random (nft `numgen
    random`, in its own namespace): heartbeats, messages and their acknowledgements."""
    if not 0 <= percent <= 100:
        raise ValueError(f"percent: {percent} is not 0..100")
    lossless(node)
    drop = f"numgen random mod 100 < {percent} drop"
    rules = (
        f"table inet {LOSS_TABLE} {{\n"
        "  chain out {\n"
        "    type filter hook output priority 0; policy accept;\n"
        f"    meta l4proto {{ tcp, udp }} th dport {COMM_PORT} {drop}\n"
        f"    meta l4proto {{ tcp, udp }} th sport {COMM_PORT} th dport != {COMM_PORT} {drop}\n"
        "  }\n"
        "}\n"
    )
    _nft(node, ["-f", "-"], rules)


def lossless(node: Node) -> None:
    """No more deliberate loss on `node` (nothing happens when there was none)."""
    _nft(node, ["delete", "table", "inet", LOSS_TABLE], check=False)


def _nft(node: Node, args: list[str], text: str = "", check: bool = True) -> None:
    _nft_in(node.namespace, args, text, check)


def _nft_in(namespace: str, args: list[str], text: str = "", check: bool = True) -> None:
    argv = [sys.executable, "-m", "ipkeeper.lab.nsexec", namespace, "--", "nft", *args]
    subprocess.run(argv, input=text, text=True, capture_output=True, check=check, timeout=30)


SILENT_TABLE = "ipk_no_responder"


def silence(node: Node) -> None:
    """`node` stops answering pings, unicast or broadcast, IPv4 and IPv6 (an nft rule in
    its own namespace drops echo requests; everything else still flows)."""
    rules = (
        f"table inet {SILENT_TABLE} {{\n"
        "  chain in {\n"
        "    type filter hook input priority 0; policy accept;\n"
        "    icmp type echo-request drop\n"
        "    icmpv6 type echo-request drop\n"
        "  }\n"
        "}\n"
    )
    unsilence(node)
    _nft(node, ["-f", "-"], rules)


def unsilence(node: Node) -> None:
    """`node` answers pings again (nothing happens when it was not silenced)."""
    _nft(node, ["delete", "table", "inet", SILENT_TABLE], check=False)


@contextlib.contextmanager
def no_responder(lab: Topology) -> Iterator[None]:
    """Nobody on the LAN answers a ping any more (issue 11, item 8): the router and the
    client drop echo requests (the servers ignore broadcast pings already), so every
    server's reachability check of a LAN VIP fails while its address and link are
    fine. Undone on leaving, even on failure."""
    others = [n for n in lab.nodes if not n.is_server]
    try:
        for node in others:
            silence(node)
        yield
    finally:
        for node in others:
            unsilence(node)


def crash(node: Node) -> None:
    """A server crash: the machine freezes, drops off every network, and its daemon dies.

    The daemon is frozen first (so it cannot react to its links going down),
    then the cables go (so that, as with a power loss, no connection is closed
    politely: a killed process's sockets would send resets), then it is
    killed. The kernel's addresses stay configured, unreachable.
    """
    daemons.freeze(node)
    unplug(node)
    daemons.kill(node)


def recover(node: Node) -> None:
    """The crashed server comes back: cables in, daemon started again."""
    plug(node)
    daemons.start(node)


# -- a full disk (lab/smalldisk.py) ------------------------------------------------------

FILLER = "filler"  # the file that fills a small disk


def state_dir(node: Node) -> Path:
    """The lab server's state directory (its database)."""
    return daemons.server_dir(node) / "state"


def small_disk(node: Node, size: int) -> int:
    """Restart the server's daemon with its state directory on a tmpfs of `size` bytes of
    its own (a copy of its files; a private mount namespace, gone with the daemon); the
    new PID. The daemon is stopped politely first, so its database is whole."""
    daemons.stop(node)
    argv = [
        sys.executable, "-m", "ipkeeper.lab.smalldisk", "--size", str(size), str(state_dir(node)),
        "--", sys.executable, "-m", "ipkeeper.daemon", "--config", str(daemons.config_path(node)),
    ]  # fmt: skip
    control.spawn(node, daemons.daemon_name(node), argv)
    return daemons.start(node)


def _seen_by_daemon(node: Node) -> Path:
    found = daemons.pid(node)
    if found is None:
        raise control.LabError(node.name, "its daemon is not running")
    return Path(f"/proc/{found}/root") / state_dir(node).relative_to("/")


def fill_disk(node: Node) -> int:
    """Fill the daemon's small disk to the last byte (through its own view of it); the
    bytes written."""
    fd = os.open(_seen_by_daemon(node) / FILLER, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    written = 0
    try:
        for chunk in (1 << 20, 4096, 1):
            with contextlib.suppress(OSError):  # ENOSPC: the next, smaller chunk
                while True:
                    written += os.write(fd, b"\0" * chunk)
    finally:
        os.close(fd)
    return written


def free_disk(node: Node) -> None:
    """Free the daemon's small disk again."""
    (_seen_by_daemon(node) / FILLER).unlink(missing_ok=True)


def normal_disk(node: Node) -> None:
    """Back from the small disk: the database copied out (SQLite's backup, a consistent
    snapshot), the daemon stopped, the copy in place of its old database, started again."""
    live = _seen_by_daemon(node) / "ipkeeper.db"
    copy = state_dir(node) / "ipkeeper.db.copy"
    source = sqlite3.connect(f"file:{live}?mode=ro", uri=True)
    target = sqlite3.connect(copy)
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()
    copy.chmod(0o600)
    daemons.stop(node)
    for stale in state_dir(node).glob("ipkeeper.db-*"):
        stale.unlink()
    copy.rename(state_dir(node) / "ipkeeper.db")
    daemons.start(node)


# -- a rogue duplicate (issue 11, item 9) --------------------------------------------------


@contextlib.contextmanager
def rogue_duplicate(
    node: Node, address: str, seconds: float, interval: float = 0.5, ifname: str = "eth0"
) -> Iterator[RogueReport]:
    """A host on the LAN takes `address` while a server holds it: configured on `node`'s
    `ifname` (/32 or /128: no route changes; IPv6 without DAD) and announced every
    `interval` for `seconds` at most, by gratuitous ARP or unsolicited neighbour
    advertisement (the project's own frames, from a packet socket in `node`'s
    namespace), from entering the `with` until `seconds` pass or the block ends;
    removed on leaving. Yields what was sent."""
    vip = ipaddress.ip_address(address)
    if not 0 < seconds <= 120 or not 0.01 <= interval <= seconds:
        raise ValueError(f"seconds/interval: {seconds}/{interval} out of bounds")
    sock = ns.socket_in(node.namespace, socket.AF_PACKET, socket.SOCK_RAW, 0)
    report = RogueReport(mac=node.port(ifname).mac)
    done = threading.Event()

    def announce() -> None:
        sock.bind((ifname, packets.ETH_P_ARP if vip.version == 4 else packets.ETH_P_IPV6))
        frame = packets.announcement(sock.getsockname()[4], vip)
        deadline = time.monotonic() + seconds
        for _ in range(int(seconds / interval) + 1):
            if done.is_set() or time.monotonic() >= deadline:
                break
            sock.send(frame)
            report.sent += 1
            report.last = time.monotonic()
            done.wait(interval)

    _address(node, ifname, vip, "add")
    thread = threading.Thread(target=announce, name="rogue-duplicate", daemon=True)
    try:
        report.first = time.monotonic()
        thread.start()
        yield report
        thread.join(seconds + 5)
    finally:
        done.set()
        thread.join(5)
        sock.close()
        with contextlib.suppress(Exception):
            _address(node, ifname, vip, "del")
        report.left = time.monotonic()


def _address(node: Node, ifname: str, vip: packets.IPAddress, op: str) -> None:
    def change() -> None:
        with IPRoute() as ipr:
            index = ipr.link_lookup(ifname=ifname)[0]
            nodad = 0x02 if vip.version == 6 and op == "add" else 0  # usable at once
            bits = vip.max_prefixlen
            ipr.addr(op, index=index, address=str(vip), prefixlen=bits, flags=nodad)

    ns.call_in(node.namespace, change)


@dataclass
class RogueReport:
    """What `rogue_duplicate` did: its MAC, the frames sent, when (monotonic seconds)."""

    mac: str
    sent: int = 0
    first: float = 0.0
    last: float = 0.0
    left: float = 0.0
