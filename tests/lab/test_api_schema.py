"""A bounded schemathesis run against s1's HTTPS API (R27): every operation with the admin
token, destructive ones against scratch resources; no 5xx, no answer outside its schema
(the reply models included), what the schema forbids refused with 400, and 405s with a
true Allow (ipkeeper.testing.api_fuzz; `make fuzz` runs the same with many more
examples). And the one operation the run leaves out, the event stream, by hand."""

from __future__ import annotations

import pytest

from ipkeeper.lab import daemons
from ipkeeper.lab.topology import Topology
from ipkeeper.testing import api_fuzz, run_cli
from ipkeeper.testing.labtools import LabServer

pytestmark = pytest.mark.lab

EXAMPLES = 3  # per operation and phase: a few hundred requests in all


def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    lab: Topology, servers: dict[str, LabServer]
) -> None:
    s1 = servers["s1"]
    # The run asks without a token and with wrong ones (401 is part of every operation):
    # not an attack, so the client must not be blocked for it.
    # The scratch application is extended with no IP resource below it (api_fuzz).
    s1.tune(API_AUTH_FAILURES=10000, UNGUARDED_APPS="allow")
    api_fuzz.create_scratch(s1)
    since = s1.mark()
    proc = api_fuzz.run(
        daemons.api_url(lab.node("s1")),
        api_fuzz.token(daemons.token_path()),
        daemons.cert_path(),
        examples=EXAMPLES,
        seed=api_fuzz.seed(),
    )
    summary = proc.stdout[-6000:]
    assert proc.returncode == 0, summary + proc.stderr[-2000:]
    assert "No issues found" in proc.stdout or " passed" in proc.stdout, summary
    # The daemon is still whole and answering after all that, and nothing was refused
    # for its source (a 429 would have hidden the operations behind it).
    assert all(server["alive"] for server in s1.status()["servers"])
    assert [e["message"] for e in s1.events(after=since) if e["kind"] == "security"] == []


def test_the_event_stream_sends_events_as_server_sent_events(
    lab: Topology, servers: dict[str, LabServer]
) -> None:
    url = daemons.api_url(lab.node("s1")) + "/api/v1/events/stream?after=0"
    proc = run_cli(
        "lab", "exec", "client", "--", "curl", "-s", "-N", "--max-time", "1",
        "--cacert", str(daemons.cert_path()),
        "-H", f"Authorization: Bearer {api_fuzz.token(daemons.token_path())}", url,
    )  # fmt: skip
    assert proc.returncode == 28  # curl's "timed out": the stream stays open
    first = proc.stdout.split("\n\n")[0].splitlines()
    assert first[0] == "id: 1" and first[1].startswith('data: {"id": 1, "ts": ')
