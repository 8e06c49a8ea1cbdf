"""The TCP API as an attacker on the LAN meets it (R27, R30): TLS with the lab's
certificate, plain HTTP only when the configuration says `insecure = true`, a viewer
token that reads and changes nothing, wrong tokens counted and their source refused,
duplicate headers and keys, out-of-range integers."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ipkeeper.config import tls
from ipkeeper.lab import control, daemons
from ipkeeper.lab.topology import Topology
from ipkeeper.testing import run_cli, wait_until
from ipkeeper.testing.labtools import LabServer, over_tcp
from tests.conftest import App

pytestmark = pytest.mark.lab

VIP = "198.18.0.50"
TAG = f"ip-{VIP}"
STANDALONE = "ipkeeperd-plain"


def admin() -> str:
    return daemons.token_path().read_text().strip()


def viewer() -> str:
    return daemons.viewer_token_path().read_text().strip()


@pytest.fixture
def s1_url(lab: Topology) -> str:
    return daemons.api_url(lab.node("s1"))


def test_the_api_over_tls_with_the_lab_certificate(
    lab: Topology, servers: dict[str, LabServer], s1_url: str, tmp_path: Path
) -> None:
    client = lab.node("client")
    status = over_tcp(client, s1_url, lambda http: http.get("/api/v1/status"), viewer())
    assert status.status_code == 200 and status.url.scheme == "https"
    security = status.json()["security"]["api"]
    pin = tls.read_certificate(daemons.cert_path())
    assert security["tls"] is True and security["insecure"] is False
    assert security["certificate"]["sha256"] == pin.sha256
    assert security["roles"] == ["admin", "viewer"]

    # The CLI from the client, pinned to the lab's certificate, with the viewer token.
    remote = [
        "--url", s1_url, "--cacert", str(daemons.cert_path()),
        "--token-file", str(daemons.viewer_token_path()), "--json",
    ]  # fmt: skip
    proc = run_cli("lab", "exec", "client", "--", "ipkeeper", "status", *remote)
    assert proc.returncode == 0, proc.stderr
    assert [s["name"] for s in json.loads(proc.stdout)["servers"]] == ["s1", "s2"]
    # Pinned to another certificate: refused, in one line that says why.
    other = tmp_path / "other.crt"
    tls.create_self_signed(
        other, tmp_path / "other.key", "impostor", [], [lab.node("s1").address().ip]
    )
    remote[3] = str(other)
    proc = run_cli("lab", "exec", "client", "--", "ipkeeper", "status", *remote)
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: cacert: https://198.18.0.11:7480 is not the certificate")
    assert proc.stderr.count("\n") == 1

    # Plain HTTP to the TLS port gets no HTTP answer at all.
    plain = run_cli(
        "lab", "exec", "client", "--", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
        "-H", f"Authorization: Bearer {admin()}", s1_url.replace("https:", "http:") + "/api/v1/status",
    )  # fmt: skip
    assert plain.returncode != 0 and plain.stdout == "000"


def standalone_config(lab: Topology, directory: Path, insecure: bool) -> Path:
    """A one-server daemon in s1's namespace with its TCP API on port 7481, no TLS."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "ipkeeper.toml"
    path.write_text(
        "[server]\n"
        'name = "plain"\n'
        f'state_dir = "{directory / "state"}"\n'
        f'tunables = "{directory / "tunables"}"\n'
        "[api]\n"
        f'socket = "{directory / "api.sock"}"\n'
        f'listen = "{lab.node("s1").address().ip}:7481"\n'
        f'token_file = "{daemons.token_path()}"\n' + ("insecure = true\n" if insecure else "")
    )
    return path


@pytest.fixture
def plain_dir(lab: Topology) -> Iterator[Path]:
    directory = control.lab_dir() / "plain"
    yield directory
    control.stop(STANDALONE)


def test_plain_http_is_refused_unless_insecure_is_said(
    lab: Topology, servers: dict[str, LabServer], plain_dir: Path
) -> None:
    daemon = [sys.executable, "-m", "ipkeeper.daemon", "--config"]
    refused = run_cli(
        "lab", "exec", "s1", "--", *daemon, str(standalone_config(lab, plain_dir, False))
    )
    assert refused.returncode == 2
    assert "listen 198.18.0.11:7481 is not a loopback address: set tls_cert and tls_key" in (
        refused.stderr
    )
    assert not (plain_dir / "state").exists()  # refused before anything was created

    config = standalone_config(lab, plain_dir, True)
    control.spawn(lab.node("s1"), STANDALONE, [*daemon, str(config)])
    url = "http://198.18.0.11:7481"

    def answer() -> httpx.Response | None:
        try:
            return over_tcp(lab.node("client"), url, lambda h: h.get("/api/v1/status"), admin())
        except httpx.TransportError:
            return None

    reply = wait_until(answer, 30, interval=0.2, message="the insecure daemon answers")
    assert reply.status_code == 200
    assert reply.json()["security"]["api"] | {"certificate": None} == {
        "socket": str(plain_dir / "api.sock"),
        "listen": "198.18.0.11:7481",
        "tls": False,
        "insecure": True,
        "roles": ["admin"],
        "certificate": None,
    }


def requests_as_viewer(http: httpx.Client, rid_app: str) -> dict[str, int]:
    """Every change, asked with the viewer token: their status codes."""
    asks: dict[str, tuple[str, str, dict[str, Any] | None]] = {
        "create ip": ("POST", "/resources/ip", {"address": "198.18.0.60", "netmask": "24"}),
        "create app": ("POST", "/resources/app", {"tag": "x", "restore": "/bin/true", "remove": "/bin/true", "check": "/bin/true"}),
        "extend": ("POST", f"/resources/{TAG}/extend", {"target": "s2"}),
        "extend app": ("POST", "/resources/app/extend", {"target": "s2"}),
        "app in service": ("POST", "/resources/app/in-service", {"server": "s2"}),
        "app out of service": ("POST", "/resources/app/out-of-service", None),
        "app setting": ("PUT", "/resources/app/settings/switchback", {"value": "automatic"}),
        "app unextend": ("POST", "/resources/app/unextend", {"server": "s2"}),
        "app delete": ("DELETE", "/resources/app", None),
        "depend": ("POST", "/dependencies", {"parent": "app", "child": TAG}),
        "undepend": ("DELETE", f"/dependencies/app/{TAG}", None),
        "pinglist": ("POST", f"/resources/{TAG}/pinglist", {"verb": "add", "addresses": ["198.18.0.1"]}),
    }  # fmt: skip
    return {
        name: http.request(method, f"/api/v1{path}", json=body).status_code
        for name, (method, path, body) in asks.items()
    }


def shape(server: LabServer) -> list[tuple[str, list[str], dict[str, tuple[str, int]]]]:
    """What a refused change must leave as it was: resources, dependencies, states."""
    return [
        (r["tag"], r["children"], {n: (i["state"], i["priority"]) for n, i in r["servers"].items()})
        for r in server.status()["resources"]
    ]


def test_a_viewer_reads_everything_and_changes_nothing(
    lab: Topology, servers: dict[str, LabServer], app: App, s1_url: str
) -> None:
    s1 = servers["s1"]
    s1.json("create", "ip", "--address", VIP, "--netmask", "24")
    s1.json(*app.create_args("app"))
    s1.json("depend", "app", TAG)  # guarded: it may be extended under QUORUM=none
    s1.json("extend", "app", "--target", "s2")
    before = shape(s1)

    def as_viewer(http: httpx.Client) -> tuple[dict[str, int], dict[str, int]]:
        reads = {
            path: http.get(path).status_code
            for path in (
                "/api/v1/status",
                "/api/v1/events?limit=5",
                f"/api/v1/resources/{TAG}",
                "/api/v1/resources/app?server=s2",
                f"/api/v1/resources/{TAG}/pinglist",
                "/api/v1/tunables",
                "/metrics",
            )
        }
        return reads, requests_as_viewer(http, "app")

    reads, changes = over_tcp(lab.node("client"), s1_url, as_viewer, viewer())
    assert set(reads.values()) == {200}, reads
    assert set(changes.values()) == {403}, changes
    assert shape(s1) == before
    refusal = over_tcp(
        lab.node("client"), s1_url, lambda h: h.delete("/api/v1/resources/app").json(), viewer()
    )
    assert refusal == {
        "error": {
            "field": "authorization",
            "reason": "DELETE needs the admin role; this is a viewer token",
        }
    }


def test_duplicate_headers_and_keys_and_huge_integers_get_400(
    lab: Topology, servers: dict[str, LabServer], s1_url: str
) -> None:
    def ask(http: httpx.Client) -> list[httpx.Response]:
        both = [
            ("Authorization", "Bearer wrong-wrong-wrong"),
            ("Authorization", f"Bearer {admin()}"),
        ]
        doubled = b'{"address": "198.18.0.61", "netmask": "24", "address": "198.18.0.62"}'
        return [
            http.get("/api/v1/status", headers=both),
            http.post(
                "/api/v1/resources/ip",
                content=doubled,
                headers={"Authorization": f"Bearer {admin()}", "Content-Type": "application/json"},
            ),
            http.get(
                "/api/v1/events?after=100000000000000000000",
                headers={"Authorization": f"Bearer {admin()}"},
            ),
        ]

    replies = over_tcp(lab.node("client"), s1_url, ask)
    assert [r.status_code for r in replies] == [400, 400, 400]
    assert [r.json()["error"]["field"] for r in replies] == ["authorization", "body", "after"]
    assert replies[1].json()["error"]["reason"] == "duplicate key 'address'"
    assert servers["s1"].status()["resources"] == []
    assert all(r.headers["cache-control"] == "no-store" for r in replies)


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in the metrics")


def test_fifty_wrong_tokens_block_the_source_with_an_event_and_a_metric(
    lab: Topology, servers: dict[str, LabServer], s1_url: str
) -> None:
    s1 = servers["s1"]
    s1.tune(API_AUTH_FAILURES=10, API_AUTH_WINDOW=60, API_AUTH_BLOCK=3)
    since = s1.mark()
    client = lab.node("client")

    def attack(http: httpx.Client) -> tuple[list[int], int, float]:
        headers = {"Authorization": "Bearer " + "guess" * 8}
        codes = [http.get("/api/v1/status", headers=headers).status_code for _ in range(50)]
        right = http.get("/api/v1/status", headers={"Authorization": f"Bearer {admin()}"})
        return codes, right.status_code, float(right.headers.get("retry-after", 0))

    started = time.monotonic()
    codes, right, retry = over_tcp(client, s1_url, attack)
    assert codes == [401] * 10 + [429] * 40
    assert right == 429 and 1 <= retry <= 3  # the right token too, from that source, for now
    # Another source is not affected: s2 asks s1 over the LAN.
    elsewhere = over_tcp(lab.node("s2"), s1_url, lambda h: h.get("/metrics"), admin())
    assert elsewhere.status_code == 200
    assert metric(elsewhere.text, 'ipkeeper_api_auth_failures_total{reason="wrong"}') == 10
    assert metric(elsewhere.text, "ipkeeper_api_auth_blocks_total") == 1
    assert metric(elsewhere.text, "ipkeeper_api_auth_refused_total") == 41
    events = [e["message"] for e in s1.events(after=since) if e["kind"] == "security"]
    assert events == [
        "API: 10 failed authentications from 198.18.0.100 within 60 s; refusing it for 3 s"
    ]

    # After API_AUTH_BLOCK the source may try again.
    wait_until(
        lambda: (
            over_tcp(client, s1_url, lambda h: h.get("/api/v1/status"), admin()).status_code == 200
        ),
        10,
        interval=0.2,
        message="the block lifted",
    )
    assert time.monotonic() - started >= 3 - 0.5
