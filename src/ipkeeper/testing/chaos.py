"""Random fault sequences in the lab, with the cluster's invariants checked after each
step (used by bench/chaos.py and, briefly, by the test suite)."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
from collections.abc import Callable

from ipkeeper.lab import daemons, faults
from ipkeeper.lab.topology import Topology
from ipkeeper.testing.labtools import LabServer, catalog

VIPS = {"198.18.0.50": ("s1", "intelligent"), "198.18.0.51": ("s2", "automatic")}


def setup(servers: dict[str, LabServer]) -> None:
    """Each VIP created on its home server and extended to every other one."""
    for vip, (home, switchback) in VIPS.items():
        servers[home].json(
            "create", "ip", "--address", vip, "--netmask", "24", "--switchback", switchback
        )
        others = sorted(name for name in servers if name != home)
        for priority, other in enumerate(others, start=1):
            servers[home].json(
                "extend", f"ip-{vip}", "--target", other, "--target-priority", str(10 * priority)
            )


def reachable(lab: Topology, cut: set[str]) -> list[LabServer]:
    """The servers whose cables are in."""
    return [LabServer(n) for n in lab.servers if n.name not in cut]


def check(
    lab: Topology, cut: set[str], dead: set[str], stopped: frozenset[str] = frozenset()
) -> str | None:
    """The first broken invariant, or None. `stopped`: VIPs taken out of service."""
    up = reachable(lab, cut)
    for vip in VIPS:
        holding = [s.name for s in up if s.has_address(vip)]
        if vip in stopped:
            if holding:
                return f"{vip} out of service but held by {holding}"
            continue
        if len(holding) > 1:
            return f"{vip} held by {holding}"
        can_hold = [s for s in up if s.name not in dead]
        if can_hold and not holding:
            return f"{vip} held by nobody while {[s.name for s in can_hold]} are up"
    live = [s for s in up if s.name not in dead]
    if len(live) == len(lab.servers) and any(catalog(s) != catalog(live[0]) for s in live[1:]):
        return "the stores disagree"
    return None


FAULTS = (
    "crash", "cut LAN cable", "cut both cables", "kill daemon", "switch over",
    # issue 11's campaign: one-shot faults (over before the invariants are checked) ...
    "pause daemon", "flap LAN cable", "wipe database", "rogue duplicate", "no responder",
    # ... and lasting ones, repaired at the next step
    "fill disk",
)  # fmt: skip
PARTIAL = "partial partition"  # with three servers or more: this one and the next cut apart
OUT_OF_SERVICE = "out of service"  # by an administrator, while the other server is down
PAUSE = 2.0  # seconds a paused daemon stays stopped (SIGSTOP) before it is continued
ROGUE = 3.0  # seconds a rogue host on the LAN announces a VIP as its own
SILENCE = 3.0  # seconds nobody on the LAN answers a ping
SMALL_DISK = 8 << 20  # bytes of the tmpfs a "fill disk" puts the state directory on

Undo = Callable[[], None]
ongoing: dict[str, Undo] = {}  # server -> how to end the lasting fault injected on it


def faults_for(names: list[str]) -> tuple[str, ...]:
    """The faults a cluster of these servers can be given."""
    return FAULTS + ((PARTIAL,) if len(names) >= 3 else ())


def _pause(name: str, node_pid: int | None) -> None:
    if node_pid is None:
        return
    os.kill(node_pid, signal.SIGSTOP)
    try:
        time.sleep(PAUSE)  # the pause itself
    finally:
        os.kill(node_pid, signal.SIGCONT)


def _flap(lab: Topology, name: str, rng: random.Random) -> None:
    node = lab.node(name)
    for _ in range(10):
        faults.set_switch_port(node, "eth0", False)
        time.sleep(rng.uniform(0.05, 0.15))  # the flap itself
        faults.set_switch_port(node, "eth0", True)
        time.sleep(rng.uniform(0.2, 0.5))


def _wipe(lab: Topology, name: str) -> None:
    node = lab.node(name)
    daemons.kill(node)
    for leftover in faults.state_dir(node).glob("ipkeeper.db*"):
        leftover.unlink()
    daemons.start(node)


def _fill(lab: Topology, name: str) -> Undo:
    node = lab.node(name)
    faults.small_disk(node, SMALL_DISK)
    faults.fill_disk(node)

    def undo() -> None:
        faults.free_disk(node)
        faults.normal_disk(node)

    return undo


def _campaign(lab: Topology, action: str, name: str, rng: random.Random, vip: str) -> bool:
    """Inject one of the campaign's faults (issue 11); False when `action` is another.
    (A rogue duplicate and a silent LAN concern the LAN, not server `name`.)"""
    if action == "rogue duplicate":
        with faults.rogue_duplicate(lab.node("client"), vip, ROGUE):
            time.sleep(ROGUE)  # the rogue's announcements
    elif action == "no responder":
        with faults.no_responder(lab):
            time.sleep(SILENCE)  # nobody answers a ping meanwhile
    elif action == "pause daemon":
        _pause(name, daemons.pid(lab.node(name)))
    elif action == "flap LAN cable":
        _flap(lab, name, rng)
    elif action == "wipe database":
        _wipe(lab, name)
    elif action == "fill disk":
        ongoing[name] = _fill(lab, name)
    elif action == PARTIAL:
        ongoing[name] = _partition(lab, name)
    else:
        return False
    return True


def _partition(lab: Topology, name: str) -> Undo:
    names = [n.name for n in lab.servers]
    other = names[(names.index(name) + 1) % len(names)]
    stack = contextlib.ExitStack()
    stack.enter_context(faults.partial_partition(lab.node(name), lab.node(other)))
    return stack.close


def inject(
    lab: Topology,
    action: str,
    name: str,
    cut: set[str],
    dead: set[str],
    vip: str,
    stopped: set[str],
    rng: random.Random | None = None,
) -> None:
    """Do `action` to server `name`, and note what it leaves cut off, dead or stopped
    (or, for a lasting fault that leaves it up and reachable, how to end it)."""
    node = lab.node(name)
    if _campaign(lab, action, name, rng or random.Random(0), vip):
        return
    if action == "crash":
        faults.crash(node)
        cut.add(name)
        dead.add(name)
    elif action == "cut LAN cable":
        faults.unplug(node, "eth0")
        cut.add(name)
    elif action == "cut both cables":
        faults.unplug(node)
        cut.add(name)
    elif action == "kill daemon":
        daemons.kill(node)
        dead.add(name)
    elif action == "switch over":
        LabServer(node).cli("in-service", f"ip-{vip}", "--server", name)
    elif action == OUT_OF_SERVICE:
        LabServer(node).json("out-of-service", f"ip-{vip}")
        stopped.add(vip)
    else:  # repair, and the administrator brings back what was taken out of service
        if name in ongoing:
            ongoing.pop(name)()
        faults.plug(node)
        daemons.start(node)
        cut.discard(name)
        dead.discard(name)
        for back in sorted(stopped):
            home = lab.node(VIPS[back][0])
            LabServer(home).json("in-service", f"ip-{back}")
        stopped.clear()


def settled(
    lab: Topology,
    cut: set[str],
    dead: set[str],
    within: float,
    hold: float = 1.0,
    stopped: frozenset[str] = frozenset(),
) -> str | None:
    """None once the invariants hold (a takeover may be needed first) and keep holding
    for `hold` seconds; otherwise what broke, after at most `within` seconds."""
    deadline = time.monotonic() + within
    good_since: float | None = None
    while True:
        broken = check(lab, cut, dead, stopped)
        now = time.monotonic()
        if broken is None:
            good_since = good_since or now
            if now - good_since >= hold:
                return None
        elif good_since is not None and "held by" in broken and "nobody" not in broken:
            return broken  # a double holder appeared after things had settled
        else:
            good_since = None
        if now >= deadline:
            return broken
        time.sleep(0.1)


def run(lab: Topology, rng: random.Random, steps: int, settle: float = 6.0) -> int:
    """The random sequence; the number of broken invariants (stops at the first)."""
    cut: set[str] = set()
    dead: set[str] = set()
    stopped: set[str] = set()
    names = [node.name for node in lab.servers]
    ongoing.clear()
    for step in range(steps):
        down = cut | dead | set(ongoing)
        # While a server is cut off or crashed (not a daemon killed alone, which
        # leaves its VIP up where no command reaches it), sometimes an
        # administrator takes a VIP out of service on the other one.
        # (Never as the last step: the repair after it brings the VIP back.)
        last = step == steps - 1
        if (
            down
            and not stopped
            and not dead - cut
            and not ongoing
            and not last
            and rng.random() < 0.4
        ):
            action, name = OUT_OF_SERVICE, next(s for s in names if s not in down)
        elif down:
            action, name = "repair", sorted(down)[0]
        else:
            action, name = rng.choice(faults_for(names)), rng.choice(names)
        inject(lab, action, name, cut, dead, rng.choice(list(VIPS)), stopped, rng)
        broken = settled(lab, cut, dead, settle, stopped=frozenset(stopped))
        print(
            f"{step:3d} {action:16s} {name}: {'ok' if broken is None else 'BROKEN: ' + broken}",
            flush=True,
        )
        if broken:
            for server in reachable(lab, cut | dead):
                for event in server.events()[-12:]:
                    print(f"      {server.name} {event['kind']}: {event['message']}")
            return 1
    return 0


def repair_all(lab: Topology) -> None:
    """Every cable in, every lasting fault ended and every daemon running again."""
    for name in list(ongoing):
        ongoing.pop(name)()
    for node in lab.servers:
        faults.plug(node)
        daemons.start(node)
