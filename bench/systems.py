"""The systems the failover benchmark drives in the lab: ipkeeper, and keepalived for comparison.

Each knows how to put the VIP on s1, inject each fault there, and undo it.
keepalived is installed from Debian's packages when missing and run in the
same namespaces, two instances with priorities 150 (s1) and 100 (s2).
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from ipkeeper.kits.ip import netlink
from ipkeeper.lab import control, daemons, faults
from ipkeeper.lab import netns as ns
from ipkeeper.lab.topology import Node, Topology
from ipkeeper.testing import wait_until
from ipkeeper.testing.labtools import LabServer, on

VIP = "198.18.0.50"
TAG = f"ip-{VIP}"
FAULTS = ("crash", "link", "kill", "switchover")


def holds_vip(node: Node) -> bool:
    """True when the VIP is configured on the server."""
    return on(node, lambda: netlink.where_is(ipaddress.ip_address(VIP))) is not None


class Ipkeeper:
    """ipkeeper's daemons, one VIP created on s1 and extended to s2."""

    name = "ipkeeper"

    def __init__(self, lab: Topology) -> None:
        self.lab = lab
        self.s1, self.s2 = lab.node("s1"), lab.node("s2")
        self.api1, self.api2 = LabServer(self.s1), LabServer(self.s2)

    def setup(self) -> None:
        """Create the VIP on s1 and extend it to s2."""
        self.api1.api("POST", "/resources/ip", {"address": VIP, "netmask": "24"})
        result = self.api1.api("POST", f"/resources/{TAG}/extend", {"target": "s2"})
        assert "extended" in result, result

    def teardown(self) -> None:
        """Delete the VIP everywhere."""
        self.api1.api("DELETE", f"/resources/{TAG}")

    def on_s1(self) -> None:
        """Make sure the VIP is in service on s1, and only there."""
        if self.api1.state(TAG) != "ISP":
            self.api1.api("POST", f"/resources/{TAG}/in-service", {"server": "s1"})
        wait_until(lambda: holds_vip(self.s1) and not holds_vip(self.s2), 10, message="VIP on s1")

    def inject(self, fault: str) -> None:
        """Do the fault to s1."""
        if fault == "crash":
            faults.crash(self.s1)
        elif fault == "link":
            faults.unplug(self.s1, "eth0")
        elif fault == "kill":
            daemons.kill(self.s1)
        else:
            self.api1.api("POST", f"/resources/{TAG}/in-service", {"server": "s2"})

    def undo(self, fault: str) -> None:
        """Bring s1 back as it was before the fault."""
        if fault == "crash":
            faults.recover(self.s1)
        elif fault == "link":
            faults.plug(self.s1, "eth0")
        elif fault == "kill":
            daemons.start(self.s1)


KEEPALIVED_CONF = """global_defs {{
    router_id {name}
    {version}
}}
vrrp_instance VI_1 {{
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority {priority}
    advert_int {advert}
    virtual_ipaddress {{
        {vip}/24 dev eth0
    }}
}}
"""


def install_keepalived() -> str:
    """The keepalived binary, installed from Debian's packages if missing."""
    found = shutil.which("keepalived") or shutil.which("keepalived", path="/usr/sbin")
    if found:
        return found
    print("installing keepalived from Debian's packages ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "keepalived"],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    found = shutil.which("keepalived", path="/usr/sbin:/usr/bin")
    assert found, "keepalived did not install"
    return found


def spawn_keepalived(binary: str, node: Node, conf: Path, where: Path) -> None:
    """Start keepalived (VRRP only, in the foreground, logging to the console) on `node`."""
    argv = [
        binary, "--dont-fork", "--log-console", "--vrrp", "--use-file", str(conf),
        "--pid", str(where / "keepalived.pid"), "--vrrp_pid", str(where / "vrrp.pid"),
    ]  # fmt: skip
    control.spawn(node, f"keepalived-{node.name}", argv)


def keepalived_pids(node: Node) -> list[int]:
    """The keepalived processes (parent and VRRP child) running in `node`'s namespace."""
    found = []
    for pid in ns.pids_in([node.namespace]):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "keepalived":
                found.append(pid)
        except OSError:
            continue
    return found


class Keepalived:
    """Two keepalived instances (VRRP only) holding the VIP, s1 preferred."""

    def __init__(self, lab: Topology, advert: float, version: int) -> None:
        self.lab = lab
        self.advert, self.version = advert, version
        self.name = f"keepalived advert {advert:g}s" + (" (VRRPv3)" if version == 3 else "")
        self.s1, self.s2 = lab.node("s1"), lab.node("s2")
        self.binary = install_keepalived()
        version = subprocess.run([self.binary, "--version"], capture_output=True, text=True)
        self.version_text = (
            (version.stdout + version.stderr).splitlines()[0]
            if (version.stdout + version.stderr)
            else "?"
        )

    def _dir(self, node: Node) -> Path:
        path = control.lab_dir() / f"keepalived-{node.name}"
        path.mkdir(exist_ok=True)
        return path

    def _start(self, node: Node, priority: int) -> None:
        where = self._dir(node)
        conf = where / "keepalived.conf"
        conf.write_text(
            KEEPALIVED_CONF.format(
                name=node.name,
                version="vrrp_version 3" if self.version == 3 else "",
                priority=priority,
                advert=f"{self.advert:g}",
                vip=VIP,
            )
        )
        spawn_keepalived(self.binary, node, conf, where)

    def _pids(self, node: Node) -> list[int]:
        return keepalived_pids(node)

    def setup(self) -> None:
        """Start both instances."""
        self._start(self.s1, 150)
        self._start(self.s2, 100)

    def teardown(self) -> None:
        """Stop both instances and remove what they left."""
        for node in (self.s1, self.s2):
            ns.terminate(self._pids(node))
            faults.plug(node)
            if holds_vip(node):
                on(
                    node,
                    lambda: netlink.delete_address("eth0", ipaddress.ip_interface(f"{VIP}/24")),
                )

    def on_s1(self) -> None:
        """Make sure s1 is master and only it holds the VIP."""
        if not self._pids(self.s1):
            self._start(self.s1, 150)
        wait_until(
            lambda: holds_vip(self.s1) and not holds_vip(self.s2),
            30,
            message="keepalived master on s1",
        )
        time.sleep(3 * self.advert)  # let s2 settle as backup after the preemption

    def inject(self, fault: str) -> None:
        """Do the fault to s1."""
        if fault == "crash":
            faults.unplug(self.s1)
            for pid in self._pids(self.s1):
                os.kill(pid, signal.SIGKILL)
        elif fault == "link":
            faults.unplug(self.s1, "eth0")
        elif fault == "kill":
            for pid in self._pids(self.s1):
                os.kill(pid, signal.SIGKILL)
        else:
            control.stop(f"keepalived-{self.s1.name}")  # SIGTERM: a graceful stop

    def undo(self, fault: str) -> None:
        """Bring s1 back as it was before the fault."""
        faults.plug(self.s1)
        if not self._pids(self.s1):
            if holds_vip(self.s1):
                on(
                    self.s1,
                    lambda: netlink.delete_address("eth0", ipaddress.ip_interface(f"{VIP}/24")),
                )
            self._start(self.s1, 150)
