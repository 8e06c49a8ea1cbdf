"""The daemon as an operator runs it: SIGHUP reloads, systemd's notify protocol, and the
metrics a monitoring system scrapes (checked by promtool)."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ipkeeper.config import tls
from ipkeeper.lab import control, daemons, faults
from ipkeeper.lab.topology import Node, Topology
from ipkeeper.testing import wait_until
from ipkeeper.testing.labtools import LabServer, holders, on

pytestmark = pytest.mark.lab

VIP = "198.18.0.50"
TAG = f"ip-{VIP}"
PROMTOOL = Path(sys.executable).parent / "promtool"


def log_text(node: Node) -> str:
    return (control.lab_dir() / f"{daemons.daemon_name(node)}.log").read_text()


def edit(node: Node, change: Callable[[str], str]) -> None:
    path = daemons.config_path(node)
    path.write_text(change(path.read_text()))


def in_server_section(*lines: str) -> Callable[[str], str]:
    return lambda text: text.replace("[server]\n", "[server]\n" + "".join(f"{x}\n" for x in lines))


def hup(node: Node) -> None:
    found = daemons.pid(node)
    assert found is not None
    os.kill(found, signal.SIGHUP)


def config_event(server: LabServer, after: int, starts: str) -> str:
    def found() -> str | None:
        return next(
            (
                e["message"]
                for e in server.events(after=after)
                if e["kind"] == "config" and e["message"].startswith(starts)
            ),
            None,
        )

    message: str = wait_until(found, 10, message=f"a config event starting {starts!r}")
    return message


def disturbances(*servers: LabServer) -> list[str]:
    """Events since each server's mark that a reload must not cause."""
    return [
        f"{e['server']} {e['kind']}: {e['message']}"
        for s in servers
        for e in s.events(after=s.since)
        if e["kind"] in ("path", "membership", "failover", "switchback")
    ]


@pytest.fixture
def s1_config(lab: Topology, pair: tuple[LabServer, LabServer]) -> Iterator[Node]:
    """s1's configuration file, as it was again (and reloaded) after the test."""
    node = lab.node("s1")
    original = daemons.config_path(node).read_text()
    yield node
    daemons.config_path(node).write_text(original)
    if daemons.pid(node) is not None:
        mark = pair[0].mark()
        hup(node)
        config_event(pair[0], mark, "reloaded")


def knock_on_the_comm_port() -> None:
    with socket.create_connection(("198.18.0.11", 7470), timeout=5) as sock:
        sock.sendall(b"not a frame of ours" * 4)


def test_sighup_applies_a_new_log_level_and_format_and_drops_nothing(
    pair: tuple[LabServer, LabServer], s1_config: Node, lab: Topology
) -> None:
    s1, s2 = pair
    s1.json("create", "ip", "--address", VIP, "--netmask", "24")
    s1.json("extend", TAG, "--target", "s2")
    s1.since, s2.since = s1.mark(), s2.mark()
    edit(s1_config, in_server_section('log_level = "warning"', 'log_format = "json"'))
    hup(s1_config)
    reloaded = config_event(s1, s1.since, "reloaded")
    assert "server.log_level: info -> warning; server.log_format: text -> json" in reloaded
    before = len(log_text(s1_config))

    s1.json("set", TAG, "switchback", "automatic")  # an info event: now below the level
    on(lab.node("client"), knock_on_the_comm_port)  # a warning: a dropped frame
    wait_until(lambda: any(e["kind"] == "security" for e in s1.events(after=s1.since)), 10)
    wait_until(lambda: "dropped a frame" in log_text(s1_config)[before:], 5, message="log line")

    lines = log_text(s1_config)[before:].splitlines()
    records = [json.loads(line) for line in lines]  # every line since is JSON
    assert any(
        r["level"] == "warning" and "security: dropped a frame" in r["message"] for r in records
    )
    assert any(e["kind"] == "admin" for e in s1.events(TAG, after=s1.since))
    assert not [r for r in records if r["level"] == "info"], records
    assert disturbances(s1, s2) == []
    assert holders([s1, s2], VIP) == ["s1"]


SECOND_PATH = {
    "s1": ', { local = "198.18.1.11", remote = "198.18.1.12" }',
    "s2": ', { local = "198.18.1.12", remote = "198.18.1.11" }',
}


def membership_moves(*servers: LabServer) -> list[str]:
    """Peers declared dead or VIPs moved since each server's mark."""
    return [
        f"{e['server']} {e['kind']}: {e['message']}"
        for s in servers
        for e in s.events(after=s.since)
        if e["kind"] in ("membership", "failover", "switchback")
    ]


def test_sighup_removes_and_adds_a_comm_path_without_dropping_the_other_or_moving_a_vip(
    pair: tuple[LabServer, LabServer], lab: Topology
) -> None:
    s1, s2 = pair
    servers = {"s1": s1, "s2": s2}
    originals = {n: daemons.config_path(lab.node(n)).read_text() for n in servers}
    s1.json("create", "ip", "--address", VIP, "--netmask", "24")
    s1.json("extend", TAG, "--target", "s2")
    s1.since, s2.since = s1.mark(), s2.mark()

    def paths_up(server: LabServer) -> list[str]:
        peer = next(x for x in server.status()["servers"] if not x["local"])
        return sorted(p["local"] for p in peer["comm_paths"] if p["state"] == "up")

    try:
        for name, server in servers.items():  # the dedicated link's path goes
            mark = server.mark()
            edit(lab.node(name), lambda text, n=name: text.replace(SECOND_PATH[n], ""))
            hup(lab.node(name))
            assert "peer." in config_event(server, mark, "reloaded")
        wait_until(lambda: paths_up(s1) == ["198.18.0.11"], 10, message="one path left on s1")
        for name, server in servers.items():  # ... and comes back
            mark = server.mark()
            daemons.config_path(lab.node(name)).write_text(originals[name])
            hup(lab.node(name))
            assert "198.18.1." in config_event(server, mark, "reloaded")
        wait_until(
            lambda: (
                paths_up(s1) == ["198.18.0.11", "198.18.1.11"]
                and paths_up(s2) == ["198.18.0.12", "198.18.1.12"]
            ),
            10,
            message="both paths up again on both servers",
        )
        downs = [
            e["message"]
            for s in servers.values()
            for e in s.events(after=s.since)
            if e["kind"] == "path" and " down" in e["message"]
        ]
        assert not [d for d in downs if "198.18.0." in d], downs  # the LAN path never dropped
        assert membership_moves(s1, s2) == []
        assert holders([s1, s2], VIP) == ["s1"]
    finally:
        for name in servers:
            daemons.config_path(lab.node(name)).write_text(originals[name])
            if daemons.pid(lab.node(name)) is not None:
                hup(lab.node(name))


def test_sighup_with_a_broken_file_keeps_the_configuration_in_force(
    pair: tuple[LabServer, LabServer], s1_config: Node
) -> None:
    s1, s2 = pair
    s1.json("create", "ip", "--address", VIP, "--netmask", "24")
    s1.json("extend", TAG, "--target", "s2")
    s1.since, s2.since = s1.mark(), s2.mark()
    config = daemons.config_path(s1_config)

    edit(s1_config, lambda text: text + "\n[server\n")
    hup(s1_config)
    refused = config_event(s1, s1.since, "reload refused")
    assert refused.startswith(f"reload refused, the configuration in force is kept: {config}: ")
    assert "not valid TOML" in refused
    assert f"ERROR ipkeeper.events: [-@s1] config: {refused}" in log_text(s1_config)

    mark = s1.mark()
    edit(s1_config, lambda text: text.replace("\n[server\n", "\n"))
    edit(s1_config, in_server_section('log_level = "loud"'))
    hup(s1_config)
    refused = config_event(s1, mark, "reload refused")
    assert refused.endswith(
        "server.log_level: Input should be 'debug', 'info', 'warning' or 'error'"
    )
    s1.json("set", TAG, "switchback", "automatic")  # info lines are still logged
    wait_until(lambda: "switchback" in log_text(s1_config).rsplit("reload refused", 1)[1], 5)

    mark = s1.mark()
    edit(s1_config, lambda text: text.replace('log_level = "loud"\n', "").replace("7470", "7471"))
    hup(s1_config)
    reloaded = config_event(s1, mark, "reloaded")
    assert reloaded.endswith("nothing to change at run time")
    later = config_event(s1, mark, "cluster.port changed")
    assert later.endswith("kept as they are until the next restart")
    assert f"WARNING ipkeeper.events: [-@s1] config: {later}" in log_text(s1_config)
    assert daemons.pid(s1_config) is not None
    assert disturbances(s1, s2) == []
    assert holders([s1, s2], VIP) == ["s1"]


def api_status(lab: Topology, port: int, cacert: Path | None = None) -> int | str:
    """GET status from the client over HTTPS, trusting `cacert` only (the lab's by default)."""
    url = f"https://198.18.0.11:{port}"
    token = daemons.token_path().read_text().strip()

    def get(http: httpx.Client) -> int:
        return http.get("/api/v1/status").status_code

    def run() -> int | str:
        verify = ssl.create_default_context(cafile=str(cacert or daemons.cert_path()))
        headers = {"Authorization": f"Bearer {token}"}
        try:
            with httpx.Client(base_url=url, verify=verify, headers=headers, timeout=10) as http:
                return get(http)
        except httpx.ConnectError as exc:
            return "untrusted" if "CERTIFICATE_VERIFY_FAILED" in str(exc) else "refused"

    return on(lab.node("client"), run)


def plain_http_status(lab: Topology, port: int) -> int | str:
    """What a plain HTTP request to the listener gets: no HTTP answer from a TLS port."""

    def get() -> int | str:
        try:
            return httpx.get(f"http://198.18.0.11:{port}/api/v1/status", timeout=10).status_code
        except httpx.TransportError:
            return "no answer"

    return on(lab.node("client"), get)


def test_sighup_moves_the_api_listener_with_its_tls_and_refuses_an_address_in_use(
    pair: tuple[LabServer, LabServer], s1_config: Node, lab: Topology
) -> None:
    s1, _ = pair
    mark = s1.mark()
    edit(s1_config, lambda text: text.replace(':7480"', ':7481"'))
    hup(s1_config)
    assert config_event(s1, mark, "reloaded").endswith(
        "api.listen: 198.18.0.11:7480 -> 198.18.0.11:7481"
    )
    assert api_status(lab, 7481) == 200  # HTTPS with the lab's certificate, as before
    assert plain_http_status(lab, 7481) == "no answer"
    assert api_status(lab, 7480) == "refused"
    security = s1.status()["security"]["api"]
    assert (security["listen"], security["tls"]) == ("198.18.0.11:7481", True)

    mark = s1.mark()
    edit(s1_config, lambda text: text.replace(':7481"', ':7470"'))  # the comm paths' port
    hup(s1_config)
    assert config_event(s1, mark, "reload refused").endswith(
        "api.listen: cannot listen on 198.18.0.11:7470: Address already in use"
    )
    assert api_status(lab, 7481) == 200


def test_sighup_installs_a_new_certificate_and_refuses_a_key_others_can_read(
    pair: tuple[LabServer, LabServer], s1_config: Node, lab: Topology, tmp_path: Path
) -> None:
    s1, _ = pair
    cert, key = tmp_path / "new.crt", tmp_path / "new.key"
    renewed = tls.create_self_signed(cert, key, "renewed", [], [lab.node("s1").address().ip])
    cert_path, key_path = str(daemons.cert_path()), str(daemons.cert_key_path())
    mark = s1.mark()
    edit(s1_config, lambda text: text.replace(cert_path, str(cert)).replace(key_path, str(key)))
    hup(s1_config)
    reloaded = config_event(s1, mark, "reloaded")
    assert f"api.tls_cert: {cert_path} -> {cert}" in reloaded
    assert reloaded.endswith(f"api: TLS certificate SHA-256 {renewed.sha256}")
    # The same address, the new certificate: the lab's is no longer what s1 shows.
    assert api_status(lab, 7480, cacert=cert) == 200
    assert api_status(lab, 7480) == "untrusted"
    assert s1.status()["security"]["api"]["certificate"]["sha256"] == renewed.sha256

    mark = s1.mark()
    key.chmod(0o644)
    hup(s1_config)
    refused = config_event(s1, mark, "reload refused")
    assert refused.endswith(f"api.tls_key: {key}: mode 0644 lets others read it; chmod 600")
    assert api_status(lab, 7480, cacert=cert) == 200  # the pair in force still serves


class NotifySocket:
    """What a service manager hears: a datagram socket the daemon is told to write to."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.heard: list[tuple[float, dict[str, str]]] = []

    def until(self, want: Callable[[dict[str, str]], bool], timeout: float = 30) -> dict[str, str]:
        """Read messages until one satisfies `want`; return it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = self.sock.recv(4096).decode()
            except TimeoutError:
                continue
            message = dict(line.split("=", 1) for line in data.splitlines())
            self.heard.append((time.time(), message))
            if want(message):
                return message
        raise TimeoutError(f"no such message; heard {[m for _, m in self.heard]}")


def test_systemd_hears_ready_status_watchdog_reloading_and_stopping(
    pair: tuple[LabServer, LabServer], lab: Topology, tmp_path: Path
) -> None:
    s1, _ = pair
    node = lab.node("s1")
    notify = NotifySocket(tmp_path / "notify")
    daemons.stop(node)
    argv = [sys.executable, "-m", "ipkeeper.daemon", "--config", str(daemons.config_path(node))]
    env = {"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "300000"}
    control.spawn(node, daemons.daemon_name(node), argv, env=env)
    try:
        ready = notify.until(lambda m: m.get("READY") == "1")
        heard_at = notify.heard[-1][0]
        assert ready["STATUS"] == (
            "s1: 1/1 peers alive, 2/2 comm paths up, 0 resource(s) in service here, quorum yes"
        )
        joined = [e for e in s1.events() if e["message"].startswith("joined the cluster")]
        assert joined and joined[-1]["ts"] <= heard_at  # READY only once the peers were heard
        for _ in range(3):
            notify.until(lambda m: m.get("WATCHDOG") == "1", timeout=5)

        env_file = tmp_path / "env"
        s1.json(
            "create", "app", "--tag", "envapp", "--restore", f"/bin/sh -c 'env > {env_file}'",
            "--remove", "/bin/true", "--check", "/bin/true",
        )  # fmt: skip
        inherited = env_file.read_text()
        assert "NOTIFY_SOCKET" not in inherited and "WATCHDOG_USEC" not in inherited
        notify.until(lambda m: "1 resource(s) in service here" in m.get("STATUS", ""), timeout=10)

        hup(node)
        notify.until(lambda m: m.get("RELOADING") == "1", timeout=10)
        notify.until(lambda m: m.get("READY") == "1", timeout=10)
        daemons.stop(node)
        assert notify.until(lambda m: m.get("STOPPING") == "1", timeout=5)["STATUS"] == (
            "s1: stopping (SIGTERM)"
        )
    finally:
        daemons.stop(node)
        notify.sock.close()
        daemons.start(node)


def scrape(server: LabServer) -> tuple[str, dict[tuple[str, frozenset[tuple[str, str]]], float]]:
    transport = httpx.HTTPTransport(uds=str(server.socket))
    with httpx.Client(transport=transport, base_url="http://ipkeeperd", timeout=30) as http:
        text = http.get("/metrics").text
    samples = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    return text, samples


def test_metrics_pass_promtool_and_follow_resources_and_comm_paths(
    pair: tuple[LabServer, LabServer], lab: Topology
) -> None:
    s1, _ = pair
    s1.json("create", "ip", "--address", VIP, "--netmask", "24")
    s1.json("extend", TAG, "--target", "s2")
    text, samples = scrape(s1)
    checked = subprocess.run(
        [str(PROMTOOL), "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert (checked.returncode, checked.stdout, checked.stderr) == (0, "", "")

    def value(name: str, **labels: str) -> float | None:
        return samples.get((name, frozenset(labels.items())))

    build = [k for k in samples if k[0] == "ipkeeper_build_info"]
    assert len(build) == 1 and dict(build[0][1])["version"] == "0.1.0"
    assert value("ipkeeper_server_info", server="s1") == 1
    assert (value("process_resident_memory_bytes") or 0) > 0
    for result in ("ok", "failed"):
        assert value("ipkeeper_recoveries_total", tag=TAG, result=result) == 0
        for role in ("taken", "handed"):
            assert value("ipkeeper_failovers_total", tag=TAG, role=role, result=result) == 0
    assert value("ipkeeper_checks_total", tag=TAG, result="failed") == 0
    assert value("ipkeeper_membership_changes_total", peer="s2", state="dead") is not None
    path = {"peer": "s2", "local": "198.18.1.11", "remote": "198.18.1.12"}
    downs = value("ipkeeper_comm_path_changes_total", **path, state="down")
    ups = value("ipkeeper_comm_path_changes_total", **path, state="up")
    assert downs is not None and ups is not None and ups >= 1

    faults.unplug(lab.node("s1"), "eth1")
    try:
        wait_until(
            lambda: (
                value_now(s1, "ipkeeper_comm_path_changes_total", **path, state="down") == downs + 1
            ),
            10,
            message="the path's down counted",
        )
    finally:
        faults.plug(lab.node("s1"), "eth1")
    wait_until(
        lambda: value_now(s1, "ipkeeper_comm_path_changes_total", **path, state="up") == ups + 1,
        10,
        message="the path's up counted",
    )
    assert value_now(s1, "ipkeeper_membership_changes_total", peer="s2", state="dead") == value(
        "ipkeeper_membership_changes_total", peer="s2", state="dead"
    )  # one path down is no death

    s1.json("delete", TAG)
    text, _ = scrape(s1)
    assert TAG not in text


def value_now(server: LabServer, name: str, **labels: str) -> float | None:
    return scrape(server)[1].get((name, frozenset(labels.items())))
