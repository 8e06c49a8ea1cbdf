"""How healthy the cluster is, judged from the status JSON alone (pure; no I/O).

`ipkeeper status` exits with the OR of the problems' bits (0 when all is
well), so a script can test one condition (`$(( rc & 8 ))`); `ipkeeper check`
maps the same problems to the monitoring-plugin levels OK / WARNING / CRITICAL.
1 (refused or failed) and 2 (bad usage) keep their meaning for every
command, hence the bits start at 4.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import Any

IN_SERVICE = ("ISP", "ISU")


class Degraded(IntFlag):
    """The bits of `ipkeeper status`'s exit code."""

    PEER_DEAD = 4  # a server is not alive (every comm path to it is down)
    PATH_DOWN = 8  # a comm path is down
    NOWHERE = 16  # a resource is in service on no live server
    FAILED = 32  # an instance is failed (OSF) or in service unprotected (ISU)
    NO_QUORUM = 64  # this server is in a minority (QUORUM=majority)
    STORE = 128  # this server cannot write its database (a full disk)


MEANINGS = {
    Degraded.PEER_DEAD: "a server is dead",
    Degraded.PATH_DOWN: "a comm path is down",
    Degraded.NOWHERE: "a resource is in service nowhere",
    Degraded.FAILED: "an instance is failed (OSF) or unprotected (ISU)",
    Degraded.NO_QUORUM: "this server has no quorum",
    Degraded.STORE: "this server cannot write its database",
}


class Level(IntEnum):
    """Monitoring-plugin exit codes (Nagios, Icinga, Zabbix, Sensu)."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3


# What each problem means to a monitoring system: a resource not served, or a
# server that may not take anything over, is an outage; the rest is lost redundancy.
LEVELS = {
    Degraded.PEER_DEAD: Level.WARNING,
    Degraded.PATH_DOWN: Level.WARNING,
    Degraded.FAILED: Level.WARNING,
    Degraded.NOWHERE: Level.CRITICAL,
    Degraded.NO_QUORUM: Level.CRITICAL,
    Degraded.STORE: Level.WARNING,  # safety actions go on; durability and changes wait
}


@dataclass(frozen=True)
class Problem:
    """One thing wrong, with the bit it sets and a short sentence."""

    bit: Degraded
    text: str

    @property
    def level(self) -> Level:
        """WARNING or CRITICAL: the worst of its bits."""
        return max(level for bit, level in LEVELS.items() if bit & self.bit)


@dataclass(frozen=True)
class Health:
    """Every problem found, and the counts that monitoring graphs."""

    problems: tuple[Problem, ...]
    servers_alive: int
    servers: int
    paths_up: int
    paths: int
    in_service: int
    resources: int
    failed: int

    @property
    def exit_code(self) -> int:
        """`ipkeeper status`'s exit code: the OR of the problems' bits, 0 when healthy."""
        code = 0
        for problem in self.problems:
            code |= problem.bit
        return code

    @property
    def level(self) -> Level:
        """The monitoring-plugin level: the worst problem's, OK when there is none."""
        return max((p.level for p in self.problems), default=Level.OK)

    def perfdata(self) -> str:
        """The counts as monitoring-plugin performance data ('label'=value;warn;crit;min;max)."""
        return " ".join(
            f"{label}={value};;;0;{top}"
            for label, value, top in (
                ("servers_alive", self.servers_alive, self.servers),
                ("paths_up", self.paths_up, self.paths),
                ("resources_in_service", self.in_service, self.resources),
                ("instances_failed", self.failed, ""),
            )
        )

    def summary(self) -> str:
        """One line: the problems, or what is well."""
        if self.problems:
            return "; ".join(p.text for p in self.problems)
        return (
            f"{self.servers_alive} of {self.servers} servers alive, "
            f"{self.paths_up} of {self.paths} comm paths up, "
            f"{self.in_service} of {self.resources} resources in service"
        )

    def plugin_line(self) -> str:
        """The monitoring-plugin output: `IPKEEPER LEVEL - summary | perfdata`."""
        return f"IPKEEPER {self.level.name} - {self.summary()} | {self.perfdata()}"


def _server_problems(status: dict[str, Any]) -> tuple[list[Problem], int, int]:
    problems: list[Problem] = []
    paths = up = 0
    for server in status.get("servers", []):
        own = server.get("comm_paths", [])
        paths += len(own)
        up += sum(1 for p in own if p.get("state") == "up")
        if not server.get("alive", False):
            # Its paths are down too; one sentence says both.
            bit = Degraded.PEER_DEAD | (Degraded.PATH_DOWN if own else 0)
            problems.append(Problem(bit, f"{server['name']} is dead (every comm path down)"))
            continue
        for path in own:
            if path.get("state") != "up":
                problems.append(
                    Problem(
                        Degraded.PATH_DOWN,
                        f"comm path {path.get('local')}->{path.get('remote')} to {server['name']} is down",
                    )
                )
    quorum = status.get("quorum") or {}
    if quorum and not quorum.get("has_quorum", True):
        problems.append(
            Problem(
                Degraded.NO_QUORUM,
                f"no quorum ({quorum.get('votes')} of {quorum.get('of')} votes): nothing is taken over",
            )
        )
    store = status.get("store") or {}
    if store and not store.get("writable", True):
        problems.append(
            Problem(
                Degraded.STORE,
                f"{status.get('server', 'this server')} {store.get('reason', 'cannot write its database')}: "
                "states kept in memory, changes refused",
            )
        )
    return problems, paths, up


def live_instances(resource: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A resource's instances on live servers (a dead server's last report is history)."""
    return {
        name: inst for name, inst in resource.get("servers", {}).items() if not inst.get("stale")
    }


def assess(status: dict[str, Any], tags: Iterable[str] = ()) -> Health:
    """Judge a status object (GET /api/v1/status); `tags` limits the resources looked at."""
    wanted = set(tags)
    problems, paths, up = _server_problems(status)
    servers = status.get("servers", [])
    resources = [
        r
        for r in status.get("resources", [])
        if not wanted
        or r["tag"] in wanted
        or any(i.get("tag") in wanted for i in r["servers"].values())
    ]
    in_service = failed = 0
    for resource in resources:
        live = live_instances(resource)
        if any(inst.get("state") in IN_SERVICE for inst in live.values()):
            in_service += 1
        else:
            problems.append(Problem(Degraded.NOWHERE, f"{resource['tag']} is in service nowhere"))
        for name, inst in sorted(live.items()):
            if inst.get("state") in ("OSF", "ISU"):
                failed += 1
                # An unprotected instance says why (nobody answers on its subnet, say).
                why = f": {inst['reason']}" if inst["state"] == "ISU" and inst.get("reason") else ""
                problems.append(
                    Problem(Degraded.FAILED, f"{resource['tag']} is {inst['state']} on {name}{why}")
                )
    return Health(
        tuple(problems),
        sum(1 for s in servers if s.get("alive")),
        len(servers),
        up,
        paths,
        in_service,
        len(resources),
        failed,
    )
