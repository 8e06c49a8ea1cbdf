"""Prometheus metrics (R33): what this daemon did, and the state it sees, at /metrics.

Counters and histograms are updated as things happen (checks, recoveries,
failovers, comm-path and membership changes); states, comm paths,
round-trip times and whether the database takes writes are read at scrape
time from the engine and the cluster.
Each daemon has its own registry, with its process metrics (CPU, memory,
file descriptors) and `ipkeeper_build_info`. At each scrape the per-resource
counters are brought in line with the resources this server has: a new
resource's failure series start at 0 (so `increase()` sees the first
failure), a deleted resource's series go away.
"""

from __future__ import annotations

import platform
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ipkeeper import __version__
from ipkeeper.model.states import KitResult, Outcome

if TYPE_CHECKING:
    from ipkeeper.engine.core import Engine

STATES = ("ISP", "ISU", "OSU", "OSF")
disable_created_metrics()  # no *_created series: they only double the output
ROLES = ("taken", "handed")
RESULTS = ("ok", "failed")
FAST = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """The counters and histograms, in a registry of this daemon's own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # Checks are counted in plain integers (a thousand a second must cost
        # nothing) and exported at each scrape by CheckCollector.
        self.check_counts: dict[str, list[int]] = {}  # tag -> [ok, failed]
        ProcessCollector(registry=self.registry)
        Gauge(
            "ipkeeper_build_info",
            "Always 1: the version of ipkeeperd and of the Python running it",
            ["version", "python"],
            registry=self.registry,
        ).labels(__version__, platform.python_version()).set(1)
        self.server_info = Gauge(
            "ipkeeper_server_info",
            "Always 1: the name of the server this daemon runs on (to pick its own series)",
            ["server"],
            registry=self.registry,
        )
        self.check_seconds = Histogram(
            "ipkeeper_check_duration_seconds",
            "Time a health check took (a batch's time shared among its checks), by resource type",
            ["type"],
            buckets=FAST,
            registry=self.registry,
        )
        self.recoveries = Counter(
            "ipkeeper_recoveries",
            "Local recoveries tried, by resource and result",
            ["tag", "result"],
            registry=self.registry,
        )
        self.failovers = Counter(
            "ipkeeper_failovers",
            "Hierarchies taken over by this server (role=taken) or handed to another (role=handed)",
            ["tag", "role", "result"],
            registry=self.registry,
        )
        self.failover_seconds = Histogram(
            "ipkeeper_failover_duration_seconds",
            "From the decision to fail over to the hierarchy in service on its new server",
            ["tag", "role"],
            buckets=FAST,
            registry=self.registry,
        )
        self.path_changes = Counter(
            "ipkeeper_comm_path_changes",
            "Comm paths that went up or down, by peer, path and new state",
            ["peer", "local", "remote", "state"],
            registry=self.registry,
        )
        self.membership_changes = Counter(
            "ipkeeper_membership_changes",
            "Peers seen becoming alive or dead (every comm path down)",
            ["peer", "state"],
            registry=self.registry,
        )
        self.address_conflicts = Counter(
            "ipkeeper_address_conflicts",
            "Address conflicts seen while in service: another MAC announcing a VIP held here",
            ["tag"],
            registry=self.registry,
        )
        self.address_conflicts_active = Gauge(
            "ipkeeper_address_conflicts_active",
            "Resources in an address conflict now (defended, not handed over)",
            registry=self.registry,
        )
        self._tags: set[str] = set()
        self._engine: Engine | None = None

    def path_changed(self, peer: str, local: str, remote: str, up: bool) -> None:
        """Count a comm path to `peer` going up or down."""
        self.path_changes.labels(peer, local, remote, "up" if up else "down").inc()

    def membership_changed(self, peer: str, alive: bool) -> None:
        """Count `peer` becoming alive or dead (a false death shows here, not only as a failover)."""
        self.membership_changes.labels(peer, "alive" if alive else "dead").inc()

    def checked(self, kind: str, tags: list[str], results: list[KitResult], seconds: float) -> None:
        """Count a batch of health checks of one resource type (the tag and result of
        each) and the time it took (cheap: called for a thousand checks a second)."""
        counts = self.check_counts
        for tag, result in zip(tags, results, strict=True):
            entry = counts.get(tag)
            if entry is None:
                entry = counts[tag] = [0, 0]
            entry[result.outcome is not Outcome.OK] += 1
        if results:
            self.check_seconds.labels(kind).observe(seconds / len(results))

    def watch(self, engine: Engine) -> None:
        """Also export, at each scrape, the states and the cluster as `engine` sees them."""
        self._engine = engine
        self.server_info.labels(engine.server).set(1)
        self.registry.register(StateCollector(engine))
        self.registry.register(CheckCollector(engine, self.check_counts))

    def render(self) -> bytes:
        """The text exposition format."""
        if self._engine is not None:
            self.sync(self._engine)
        return bytes(generate_latest(self.registry))

    def sync(self, engine: Engine) -> None:
        """Series at 0 for every resource on this server, and for every peer and path;
        none left for a resource that was deleted."""
        tags = {
            rec.tag_on(engine.server)
            for rec in engine.repo.resources()
            if rec.instance(engine.server) is not None
        }
        for tag in tags - self._tags:
            self.address_conflicts.labels(tag)
            for result in RESULTS:
                self.recoveries.labels(tag, result)
                for role in ROLES:
                    self.failovers.labels(tag, role, result)
        for tag in self._tags - tags:
            self.address_conflicts.remove(tag)
            for result in RESULTS:
                self.recoveries.remove(tag, result)
                for role in ROLES:
                    self.failovers.remove(tag, role, result)
                    self.failover_seconds.remove(tag, role)
        self._tags = tags
        for server in engine.peers.servers():
            if server.get("local"):
                continue
            for state in ("alive", "dead"):
                self.membership_changes.labels(server["name"], state)
            for path in server["comm_paths"]:
                for state in ("up", "down"):
                    self.path_changes.labels(server["name"], path["local"], path["remote"], state)


class CheckCollector(Collector):
    """`ipkeeper_checks_total{tag,result}` from the plain counts, for resources that exist
    here (a deleted resource's series go with it; failures start at 0)."""

    def __init__(self, engine: Engine, counts: dict[str, list[int]]) -> None:
        self.engine = engine
        self.counts = counts

    def collect(self) -> Iterator[Metric]:
        """Read the counts; called at each scrape."""
        family = CounterMetricFamily(
            "ipkeeper_checks", "Health checks run, by resource and result", labels=["tag", "result"]
        )
        server = self.engine.server
        known = {r.tag_on(server) for r in self.engine.repo.resources() if r.instance(server)}
        for tag in sorted(known):
            ok, failed = self.counts.get(tag, (0, 0))
            family.add_metric([tag, "ok"], float(ok))
            family.add_metric([tag, "failed"], float(failed))
        for tag in set(self.counts) - known:
            del self.counts[tag]
        yield family


class StateCollector(Collector):
    """Instance states, comm paths, heartbeat round trips, quorum and dropped frames."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        """Read the current state; called at each scrape."""
        from ipkeeper.engine.views import status

        data = status(self.engine)
        states = GaugeMetricFamily(
            "ipkeeper_instance_state",
            "1 for the state each instance is in",
            labels=["tag", "server", "state"],
        )
        priority = GaugeMetricFamily(
            "ipkeeper_instance_priority", "Priority of each instance", labels=["tag", "server"]
        )
        for res in data["resources"]:
            for server, inst in res["servers"].items():
                for state in STATES:
                    states.add_metric(
                        [res["tag"], server, state], 1.0 if inst.get("state") == state else 0.0
                    )
                priority.add_metric([res["tag"], server], float(inst["priority"]))
        alive = GaugeMetricFamily(
            "ipkeeper_server_alive", "1 while a server is alive", labels=["server"]
        )
        path_up = GaugeMetricFamily(
            "ipkeeper_comm_path_up", "1 while a comm path is up", labels=["peer", "local", "remote"]
        )
        rtt = GaugeMetricFamily(
            "ipkeeper_heartbeat_rtt_seconds",
            "Heartbeat round-trip time",
            labels=["peer", "local", "remote"],
        )
        for server in data["servers"]:
            alive.add_metric([server["name"]], 1.0 if server["alive"] else 0.0)
            for path in server["comm_paths"]:
                labels = [server["name"], path["local"], path["remote"]]
                path_up.add_metric(labels, 1.0 if path["state"] == "up" else 0.0)
                if path.get("rtt_ms") is not None:
                    rtt.add_metric(labels, path["rtt_ms"] / 1000)
        quorum = GaugeMetricFamily("ipkeeper_quorum", "1 while this server may take over (R32)")
        quorum.add_metric([], 1.0 if data["quorum"]["has_quorum"] else 0.0)
        dropped = CounterMetricFamily(
            "ipkeeper_frames_dropped", "Cluster frames dropped (bad key, replay, size)"
        )
        dropped.add_metric([], float(getattr(self.engine.peers, "dropped", 0)))
        unprotected = GaugeMetricFamily(
            "ipkeeper_unprotected_resources",
            "Resources kept in service here unprotected: nobody answers on their subnet from "
            "any server (NO_RESPONDER=keep)",
        )
        unprotected.add_metric([], float(len(data.get("unprotected", []))))
        yield from (states, priority, alive, path_up, rtt, quorum, dropped, unprotected)
        yield from _store(data["store"])


def _store(store: dict[str, object]) -> Iterator[Metric]:
    """Whether the database takes writes, what the disk refused, and what waits (issue 11)."""
    writable = GaugeMetricFamily(
        "ipkeeper_store_writable", "1 while this server's database takes writes (0: a full disk)"
    )
    writable.add_metric([], 1.0 if store["writable"] else 0.0)
    failures = CounterMetricFamily(
        "ipkeeper_store_write_failures", "Writes this server's disk refused (full, read-only, I/O)"
    )
    failures.add_metric([], float(str(store["write_failures"])))
    waiting = GaugeMetricFamily(
        "ipkeeper_store_waiting",
        "States (and settings) and events kept in memory until the disk takes writes",
        labels=["what"],
    )
    waiting.add_metric(["states"], float(str(store["unsaved_states"])))
    waiting.add_metric(["events"], float(str(store["waiting_events"])))
    yield from (writable, failures, waiting)
