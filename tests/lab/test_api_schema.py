"""A property-based run (schemathesis, bounded) against a lab daemon's API over TCP:
no 5xx, every answer as the OpenAPI document says, 405s with a true Allow."""

from __future__ import annotations

import os

import pytest

from ipkeeper.lab import daemons
from ipkeeper.lab.topology import Topology
from ipkeeper.testing import fuzz, run_cli
from ipkeeper.testing.labtools import LabServer

pytestmark = pytest.mark.lab


def api_token() -> str:
    """The token the run uses: IPKEEPER_FUZZ_TOKEN (say, another role's), else the lab's."""
    return os.environ.get("IPKEEPER_FUZZ_TOKEN") or daemons.token_path().read_text().strip()


def delete_everything(server: LabServer) -> None:
    for _ in range(200):
        resources = server.status()["resources"]
        if not resources:
            return
        server.api("DELETE", f"/resources/{resources[0]['tag']}")
    raise AssertionError(f"{server.name} still holds {len(resources)} resources")


def test_no_5xx_and_no_answer_off_its_schema(lab: Topology, servers: dict[str, LabServer]) -> None:
    s1 = servers["s1"]
    # The document's examples name these, so the examples phase meets real resources.
    s1.json("create", "ip", "--address", "198.18.0.50", "--netmask", "24")
    s1.json("extend", "ip-198.18.0.50", "--target", "s2")
    argv = fuzz.command(daemons.api_url(lab.node("s1")), api_token(), max_examples=8)
    try:
        proc = run_cli("lab", "exec", "client", "--", *argv, env=fuzz.environment(), timeout=900)
    finally:
        for server in servers.values():
            delete_everything(server)
    report = proc.stdout[-6000:] + proc.stderr[-2000:]
    assert proc.returncode == 0, report
    assert "No issues found" in proc.stdout or " passed" in proc.stdout, report


def test_the_event_stream_sends_events_as_server_sent_events(
    lab: Topology, servers: dict[str, LabServer]
) -> None:
    url = daemons.api_url(lab.node("s1")) + "/api/v1/events/stream?after=0"
    proc = run_cli(
        "lab", "exec", "client", "--", "curl", "-s", "-N", "--max-time", "1",
        "-H", f"Authorization: Bearer {api_token()}", url,
    )  # fmt: skip
    assert proc.returncode == 28  # curl's "timed out": the stream stays open
    first = proc.stdout.split("\n\n")[0].splitlines()
    assert first[0] == "id: 1" and first[1].startswith('data: {"id": 1, "ts": ')
