"""Issue 11, item 4: under QUORUM=none nothing but an IP resource below it keeps an
application from running on both servers when the comm paths are cut. Extending one
with none is refused (UNGUARDED_APPS=refuse), with one clear line and nothing changed
on either server; with an IP resource below it the extend passes and a cut finds the
address still answered; with UNGUARDED_APPS=allow it passes and status says that
nothing guards it."""

from __future__ import annotations

import json

import pytest

from ipkeeper.lab import daemons, faults
from ipkeeper.lab.topology import Topology
from ipkeeper.testing import wait_until
from ipkeeper.testing.labtools import LabServer, catalog
from ipkeeper.testing.ownership import sampler_for
from tests.conftest import App

pytestmark = pytest.mark.lab

VIP = "198.18.0.50"
TAG = f"ip-{VIP}"
REFUSAL = (
    "error: target: web has no IP resource below it; with QUORUM=none nothing would stop it "
    "running on s1 and s2 at once when the comm paths are cut (make it depend on an IP "
    "resource first, use QUORUM=majority with a witness, or set UNGUARDED_APPS=allow)"
)


def hierarchy(server: LabServer, tag: str) -> dict[str, object]:
    [found] = [h for h in server.status()["hierarchies"] if h["tag"] == tag]
    return found


def test_an_application_only_hierarchy_is_not_extended_and_one_on_an_ip_is_guarded(
    pair: tuple[LabServer, LabServer], lab: Topology, app: App
) -> None:
    s1, s2 = pair
    s1.json(*app.create_args("web"))
    before = (catalog(s1), catalog(s2))
    refused = s1.cli("extend", "web", "--target", "s2")
    assert refused.returncode == 1
    assert refused.stderr.strip() == REFUSAL  # one line
    asked_s2 = s2.api("POST", "/resources/web/extend", {"target": "s2"})  # forwarded to s1
    assert (
        asked_s2["error"]["field"] == "target"
        and "no IP resource below" in asked_s2["error"]["reason"]
    )
    assert (catalog(s1), catalog(s2)) == before
    assert s1.state("web", "s2") is None

    s1.json("create", "ip", "--address", VIP, "--netmask", "24")
    s1.json("depend", "web", TAG)
    done = s1.json("extend", "web", "--target", "s2")
    assert sorted(done["extended"]) == sorted(["web", TAG]) and done["warnings"] == []
    wait_until(lambda: s2.state("web", "s2") == "OSU", 5, message="s2 knows web")
    shown = hierarchy(s1, "web")
    assert (shown["guarded"], shown["guard"], shown["servers"]) == (
        True,
        "unique-address check",
        ["s1", "s2"],
    )

    # What guards it: cut off, s2 finds the address still answered and never starts web.
    starts = len([line for line in app.log() if line.startswith("start")])
    s2.since = s2.mark()
    owners = sampler_for({n.name: n.namespace for n in lab.servers}, VIP)
    with owners, faults.comm_paths_cut(lab.node("s1"), "198.18.0.12"):
        wait_until(
            lambda: any(e["kind"] == "not-taken" for e in s2.events(after=s2.since)),
            10,
            message="s2 tried to take web over",
        )
    assert owners.longest_dual(VIP) == 0.0, owners.story(VIP)
    assert len([line for line in app.log() if line.startswith("start")]) == starts, app.log()
    assert s1.state("web") == "ISP"


def test_with_unguarded_apps_allowed_the_extend_passes_and_status_tells(
    pair: tuple[LabServer, LabServer], lab: Topology, app: App
) -> None:
    s1, s2 = pair
    s1.tune(UNGUARDED_APPS="allow")
    s1.json(*app.create_args("web"))
    done = s1.json("extend", "web", "--target", "s2")
    assert done["warnings"] == [
        "web is guarded by nothing: with QUORUM=none it may run on s1 and s2 at once when "
        "the comm paths are cut (UNGUARDED_APPS=allow)"
    ]
    shown = hierarchy(s1, "web")
    assert (shown["guarded"], shown["unguarded"]) == (False, ["web"])
    assert shown["guard"] == (
        "nothing: may run on two servers if the comm paths are cut (UNGUARDED_APPS=allow)"
    )
    note = s1.status()["quorum"]["note"]
    assert note.endswith(
        "1 hierarchy is guarded by nothing and may run on two servers if the comm paths "
        "are cut: web"
    ), note
    text = s1.cli("status", "--brief")
    assert (
        "guarded against running on two servers by nothing: may run on two servers if the "
        "comm paths are cut (UNGUARDED_APPS=allow): web"
    ) in text.stdout.splitlines()

    # At start-up, a hierarchy that nothing guards is told of, once. (Out of service first:
    # the test's application keeps its marker in one directory for both servers, so s2's
    # start-up probe would find it "running" there too.)
    s1.json("out-of-service", "web")
    daemons.kill(lab.node("s2"))
    daemons.start(lab.node("s2"))
    wait_until(
        lambda: any(e["kind"] == "unguarded" for e in s2.events("web")), 15, message="a warning"
    )
    warned = [e for e in s2.events("web") if e["kind"] == "unguarded"]
    assert len(warned) == 1, json.dumps(warned)
    assert warned[0]["message"] == (
        "guarded by nothing on s1 and s2: with QUORUM=none and no IP resource below it, web "
        "may run on two servers at once if the comm paths are cut; nothing is taken down "
        "(make it depend on an IP resource, or use QUORUM=majority with a witness)"
    )
    assert hierarchy(s2, "web")["guarded"] is False
