"""ipkeeper at a user's scale: 10, 100, 1,000 VIPs on a pair of servers, next to keepalived.

    .venv/bin/python bench/scale.py --vips 10,100,1000 [--compare keepalived]
                                    [--window 60] [--hogs 4] [--loss 10,30]

For each number of VIPs (in 198.18.4.0/22, one group on s1, extended to s2),
in a fresh lab, it prints:

- create: one VIP at a time through the API (create + extend, up to 100 of
  them: the rate), and all of them at once through `apply`;
- steady state over WINDOW seconds: CPU-seconds per minute (from /proc, the
  daemon's own, whatever else runs) and RSS of each daemon, checks run per
  second against the nominal (VIPs / CHECK_INTERVAL), heartbeat round trip,
  and false deaths (peers declared dead, paths down) on either server;
  again with HOGS processes spinning, and with LOSS % of the comm-path
  packets dropped (nft in the servers' namespaces; a window per value), when asked;
- crash of s1 (frozen, cables pulled, killed): when 1 %, 50 % and 100 % of the
  VIPs answer a client from s2 (ARP, from the client's namespace);
- switchover: the group moved back to s1 by an administrator, until every VIP
  answers from s1;
- latency of `ipkeeper status` (the command) and of GET /metrics.

With --compare keepalived, keepalived from Debian runs the same VIPs in one
vrrp_instance (the first 20 in adverts, the rest virtual_ipaddress_excluded)
with advert 1 s and 0.1 s, measured the same way in the same lab. Nothing is
asserted: it prints figures.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ipkeeper.lab import control, daemons, faults
from ipkeeper.lab import netns as ns
from ipkeeper.lab.arpwatch import Sweeper
from ipkeeper.lab.topology import Node, Topology
from ipkeeper.testing import wait_until
from ipkeeper.testing.labtools import LabServer
from systems import install_keepalived, keepalived_pids, spawn_keepalived

FIRST = ipaddress.ip_address("198.18.4.10")
CLIENT_SOURCE = "198.18.7.254"
TICK = os.sysconf("SC_CLK_TCK")


def vips(count: int) -> list[str]:
    """The first `count` VIPs of the scale subnet."""
    return [str(FIRST + i) for i in range(count)]


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mb(pid: int) -> float:
    """Resident memory of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Row:
    """One system's figures for one number of VIPs."""

    system: str
    vips: int
    figures: dict[str, str] = field(default_factory=dict)


def percentiles(times: list[float], count: int) -> str:
    """1 %, 50 % and 100 % of `count` VIPs answering, from sorted delays."""
    if len(times) < count:
        return f"{len(times)}/{count} answered"
    times = sorted(times)

    def at(share: float) -> float:
        return times[max(int(count * share + 0.999999) - 1, 0)]

    return f"{at(0.01):.2f} / {at(0.5):.2f} / {at(1.0):.2f} s"


def hogs(count: int) -> list[subprocess.Popen[bytes]]:
    """`count` processes spinning on the CPUs."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


class Window:
    """CPU and memory of some processes over a stretch of time."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.start = time.monotonic()
        self.cpu = {name: cpu_seconds(pid) for name, pid in pids.items()}

    def done(self) -> dict[str, tuple[float, float]]:
        """Per process: (CPU-seconds per minute, RSS MB)."""
        elapsed = time.monotonic() - self.start
        return {
            name: ((cpu_seconds(pid) - self.cpu[name]) * 60 / elapsed, rss_mb(pid))
            for name, pid in self.pids.items()
        }


def failover_times(lab: Topology, addresses: list[str], crash: Callable[[], None]) -> str:
    """Crash s1 while a client asks for every VIP; when they answer from s2."""
    s2_mac = lab.node("s2").port("eth0").mac
    sweeper = Sweeper(lab.node("client"), addresses, CLIENT_SOURCE, limit=60).start()
    try:
        time.sleep(0.5)
        start = time.monotonic()
        crash()
        with contextlib.suppress(TimeoutError):  # what did answer is the figure
            wait_until(
                lambda: len(sweeper.first_from(s2_mac, start)) == len(addresses),
                30,
                message="every VIP from s2",
            )
        return percentiles(
            [t - start for t in sweeper.first_from(s2_mac, start).values()], len(addresses)
        )
    finally:
        sweeper.stop()


class Ipkeeper:
    """ipkeeper's daemons in the lab, measured."""

    name = "ipkeeper"

    def __init__(self, lab: Topology, count: int) -> None:
        self.lab, self.count = lab, count
        self.s1, self.s2 = LabServer(lab.node("s1")), LabServer(lab.node("s2"))

    def document(self) -> dict[str, object]:
        """All the VIPs under one group, on s1 then s2."""
        last = FIRST + self.count - 1
        return {
            "defaults": {"netmask": "22", "interface": "eth0", "servers": {"s1": 1, "s2": 10}},
            "ip": [{"range": f"{FIRST}-{last}"}],
            "group": [{"tag": "vips", "children": ["ip-198.18.*"]}],
        }

    def one_by_one(self, row: Row) -> None:
        """Create and extend VIPs one at a time through the API (100 at most), then delete them."""
        sample = vips(min(self.count, 100))
        start = time.monotonic()
        for address in sample:
            self.s1.api(
                "POST", "/resources/ip", {"address": address, "netmask": "22", "interface": "eth0"}
            )
            self.s1.api("POST", f"/resources/ip-{address}/extend", {"target": "s2"})
        took = time.monotonic() - start
        row.figures["create one by one"] = (
            f"{took:.1f} s ({took / len(sample) * 1000:.0f} ms each"
            + (f", {len(sample)} of them)" if len(sample) < self.count else ")")
        )
        for address in sample:
            self.s1.api("DELETE", f"/resources/ip-{address}")
        wait_until(lambda: not self.s2.status()["resources"], 60, message="deleted everywhere")

    def setup(self, row: Row) -> None:
        """Everything through apply; timed until every VIP is in service on s1."""
        start = time.monotonic()
        answer = self.s1.api("POST", "/apply", {"document": self.document()})
        assert "error" not in answer, answer
        row.figures["apply"] = f"{time.monotonic() - start:.2f} s"

    def pids(self) -> dict[str, int]:
        """The daemons' PIDs."""
        found = {n.name: daemons.pid(n) for n in self.lab.servers}
        return {name: pid for name, pid in found.items() if pid is not None}

    def marks(self) -> tuple[int, int]:
        """Event ids to count from."""
        return self.s1.mark(), self.s2.mark()

    def false_deaths(self, marks: tuple[int, int]) -> str:
        """Peers declared dead and paths down since `marks`, on both servers."""
        dead = paths = 0
        for server, mark in zip((self.s1, self.s2), marks, strict=True):
            for event in server.api("GET", f"/events?limit=10000&after={mark}")["events"]:
                if event["kind"] == "membership" and " is dead" in event["message"]:
                    dead += event.get("count", 1)
                elif event["kind"] == "path" and " down" in event["message"]:
                    paths += event.get("count", 1)
        return f"{dead} deaths, {paths} paths down"

    def checks(self) -> float:
        """Health checks run on s1 so far (from /metrics)."""
        text = _metrics(self.s1)
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("ipkeeper_checks_total{")
        )

    def rtt(self) -> str:
        """Heartbeat round trips s1 sees."""
        values = [
            p["rtt_ms"]
            for s in self.s1.status()["servers"]
            for p in s["comm_paths"]
            if p.get("rtt_ms") is not None
        ]
        return f"{statistics.median(values):.2f} ms" if values else "-"

    def crash(self) -> None:
        """s1 crashes."""
        faults.crash(self.lab.node("s1"))

    def back(self) -> None:
        """s1 comes back (intelligent switchback: the VIPs stay on s2)."""
        faults.recover(self.lab.node("s1"))
        wait_until(lambda: self.s1.state("vips") == "OSU", 60, message="s1 back, standing by")

    def switchover(self) -> str:
        """The group moved to s1 by an administrator: until every VIP answers from s1."""
        addresses = vips(self.count)
        s1_mac = self.lab.node("s1").port("eth0").mac
        sweeper = Sweeper(self.lab.node("client"), addresses, CLIENT_SOURCE, limit=60).start()
        try:
            time.sleep(0.5)
            start = time.monotonic()
            answer = self.s1.api("POST", "/resources/vips/in-service", {"server": "s1"})
            call = time.monotonic() - start
            assert "error" not in answer, answer
            wait_until(
                lambda: len(sweeper.first_from(s1_mac, start)) == len(addresses),
                30,
                message="every VIP from s1",
            )
            last = max(sweeper.first_from(s1_mac, start).values()) - start
            return f"{last:.2f} s to the last VIP (the request took {call:.2f} s)"
        finally:
            sweeper.stop()

    def latencies(self) -> str:
        """`ipkeeper status` (the command) and GET /metrics."""
        times = []
        for _ in range(3):
            start = time.monotonic()
            self.s1.cli("status")
            times.append(time.monotonic() - start)
        metrics = []
        for _ in range(3):
            start = time.monotonic()
            _metrics(self.s1)
            metrics.append(time.monotonic() - start)
        return f"status {statistics.median(times):.2f} s, /metrics {statistics.median(metrics) * 1000:.0f} ms"


def _metrics(server: LabServer) -> str:
    import httpx

    transport = httpx.HTTPTransport(uds=str(server.socket))
    with httpx.Client(transport=transport, base_url="http://ipkeeperd", timeout=60) as http:
        return http.get("/metrics").text


KEEPALIVED = """global_defs {{
    router_id {name}
    {version}
}}
vrrp_instance VI_1 {{
    state BACKUP
    interface eth0
    virtual_router_id 52
    priority {priority}
    advert_int {advert}
    virtual_ipaddress {{
{head}
    }}
    virtual_ipaddress_excluded {{
{tail}
    }}
}}
"""


class Keepalived:
    """keepalived in the same lab, the same VIPs in one vrrp_instance."""

    def __init__(self, lab: Topology, count: int, advert: float) -> None:
        self.lab, self.count, self.advert = lab, count, advert
        self.name = f"keepalived advert {advert:g} s"
        self.binary = install_keepalived()

    def _start(self, node: Node, priority: int) -> None:
        where = control.lab_dir() / f"keepalived-{node.name}"
        where.mkdir(exist_ok=True)
        lines = [f"        {a}/22 dev eth0" for a in vips(self.count)]
        conf = where / "keepalived.conf"
        conf.write_text(
            KEEPALIVED.format(
                name=node.name,
                version="vrrp_version 3" if self.advert < 1 else "",
                priority=priority,
                advert=f"{self.advert:g}",
                head="\n".join(lines[:20]),
                tail="\n".join(lines[20:]),
            )
        )
        spawn_keepalived(self.binary, node, conf, where)

    def _pids(self, node: Node) -> list[int]:
        return keepalived_pids(node)

    def pids(self) -> dict[str, int]:
        """Every keepalived process (its parent and VRRP child) per server."""
        found = {}
        for node in self.lab.servers:
            for i, pid in enumerate(self._pids(node)):
                found[f"{node.name}/{i}"] = pid
        return found

    def setup(self, row: Row) -> None:
        """Both instances started; timed until s1 holds every VIP."""
        start = time.monotonic()
        self._start(self.lab.node("s1"), 150)
        self._start(self.lab.node("s2"), 100)
        addresses = vips(self.count)
        s1_mac = self.lab.node("s1").port("eth0").mac
        sweeper = Sweeper(self.lab.node("client"), addresses, CLIENT_SOURCE, limit=120).start()
        try:
            wait_until(
                lambda: len(sweeper.answered_by(s1_mac, start)) == len(addresses),
                90,
                message="keepalived master on s1 with every VIP",
            )
        finally:
            sweeper.stop()
        row.figures["apply"] = f"{time.monotonic() - start:.2f} s (start until every VIP answers)"

    def crash(self) -> None:
        """s1's cables pulled and keepalived killed."""
        faults.unplug(self.lab.node("s1"))
        for pid in self._pids(self.lab.node("s1")):
            os.kill(pid, 9)

    def teardown(self) -> None:
        """Stop both and remove what they left."""
        for node in self.lab.servers:
            ns.terminate(self._pids(node))
            faults.plug(node)


def measure_ipkeeper(count: int, args: argparse.Namespace) -> Row:
    """Every figure for ipkeeper with `count` VIPs, in a fresh lab."""
    control.down()
    lab = control.up(2)
    row = Row("ipkeeper", count)
    system = Ipkeeper(lab, count)
    try:
        system.one_by_one(row)
        system.setup(row)
        time.sleep(3)  # let the first checks and reports settle (not a synchronisation)
        steady(row, system, args, lab)
        row.figures["crash: 1 % / 50 % / 100 % answer"] = failover_times(
            lab, vips(count), system.crash
        )
        system.back()
        row.figures["switchover of the group"] = system.switchover()
        row.figures["latency"] = system.latencies()
    finally:
        control.down()
    return row


def steady(row: Row, system: Ipkeeper, args: argparse.Namespace, lab: Topology) -> None:
    """The steady-state windows: quiet, with hogs, with loss."""
    variants = ["quiet"] + ([f"{args.hogs} hogs"] if args.hogs else [])
    variants += [f"{loss} % loss" for loss in args.loss]
    interval = 1.0
    for label in variants:
        marks = system.marks()
        checks_before = system.checks()
        window = Window(system.pids())
        spinning = hogs(args.hogs) if "hogs" in label else []
        if "loss" in label:
            for node in lab.servers:
                faults.lossy(node, int(label.split()[0]))
        try:
            time.sleep(args.window)
        finally:
            for hog in spinning:
                hog.kill()
                hog.wait()
            for node in lab.servers:
                faults.lossless(node)
        usage = window.done()
        rate = (system.checks() - checks_before) / args.window
        row.figures[f"{label}: CPU-s/min, RSS"] = ", ".join(
            f"{name} {cpu:.2f} ({rss:.0f} MB)" for name, (cpu, rss) in sorted(usage.items())
        )
        row.figures[f"{label}: checks/s (nominal), rtt"] = (
            f"{rate:.0f} ({row.vips + 1:.0f}/{interval:g} s), {system.rtt()}"
        )
        row.figures[f"{label}: false deaths"] = system.false_deaths(marks)


def measure_keepalived(count: int, advert: float, args: argparse.Namespace) -> Row:
    """keepalived's figures with `count` VIPs, in a fresh lab without ipkeeper's daemons."""
    control.down()
    lab = control.up(2, daemons=False)
    system = Keepalived(lab, count, advert)
    row = Row(system.name, count)
    try:
        system.setup(row)
        time.sleep(3 * advert + 1)
        window = Window(system.pids())
        time.sleep(args.window)
        usage = window.done()
        total = {}
        for name, (cpu, rss) in usage.items():
            server = name.split("/")[0]
            old = total.get(server, (0.0, 0.0))
            total[server] = (old[0] + cpu, old[1] + rss)
        row.figures["quiet: CPU-s/min, RSS"] = ", ".join(
            f"{name} {cpu:.2f} ({rss:.0f} MB)" for name, (cpu, rss) in sorted(total.items())
        )
        row.figures["crash: 1 % / 50 % / 100 % answer"] = failover_times(
            lab, vips(count), system.crash
        )
    finally:
        system.teardown()
        control.down()
    return row


def main() -> None:
    """Measure, then print one block per system and number of VIPs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vips", default="10,100,1000")
    parser.add_argument("--compare", choices=["keepalived"])
    parser.add_argument("--window", type=float, default=60.0)
    parser.add_argument("--hogs", type=int, default=0)
    parser.add_argument(
        "--loss",
        type=lambda text: [int(x) for x in text.split(",") if x],
        default=[],
        help="percent of comm-path packets dropped, one window each (e.g. 10,30)",
    )
    args = parser.parse_args()
    counts = [int(n) for n in args.vips.split(",")]
    print(
        f"# bench/scale.py {' '.join(sys.argv[1:])} on {platform.node()}, {os.cpu_count()} CPUs",
        flush=True,
    )
    for count in counts:
        rows = [measure_ipkeeper(count, args)]
        if args.compare:
            rows += [measure_keepalived(count, advert, args) for advert in (1.0, 0.1)]
        for row in rows:
            print(f"\n## {row.system}, {row.vips} VIPs", flush=True)
            for key, value in row.figures.items():
                print(f"  {key:42s} {value}", flush=True)


if __name__ == "__main__":
    main()
