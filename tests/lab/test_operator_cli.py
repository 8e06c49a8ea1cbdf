"""The operator's CLI in the lab: status exit codes, check for monitoring systems,
events from every server, tunables that paste back, errors naming the wrong thing,
--server everywhere, shell completion."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ipkeeper.lab import faults
from ipkeeper.lab.topology import Topology
from ipkeeper.testing import run_cli, wait_until
from ipkeeper.testing.labtools import LabServer

pytestmark = pytest.mark.lab

VIP = "198.18.0.54"
TAG = f"ip-{VIP}"


def vip_on_both(s1: LabServer) -> None:
    s1.json("create", "ip", "--address", VIP, "--netmask", "24")
    s1.json("extend", TAG, "--target", "s2")


def peer_alive(server: LabServer, peer: str) -> bool:
    return next(s["alive"] for s in server.status()["servers"] if s["name"] == peer)


def test_status_and_check_exit_codes_follow_the_clusters_health(
    pair: tuple[LabServer, LabServer], lab: Topology
) -> None:
    s1, _ = pair
    vip_on_both(s1)
    healthy = s1.cli("status")
    assert healthy.returncode == 0, healthy.stderr
    assert "since 20" in healthy.stdout and "created" in healthy.stdout
    check = s1.cli("check")
    assert check.returncode == 0
    assert check.stdout.startswith("IPKEEPER OK - 2 of 2 servers alive, 2 of 2 comm paths up")
    assert "| servers_alive=2;;;0;2 paths_up=2;;;0;2 resources_in_service=1;;;0;1" in check.stdout

    # A comm path down: redundancy lost, nothing down.
    faults.unplug(lab.node("s2"), "eth1")
    try:
        wait_until(lambda: s1.cli("status", "--json").returncode == 8, 5, message="path down seen")
        check = s1.cli("check")
        assert check.returncode == 1, check.stdout
        assert check.stdout.startswith(
            "IPKEEPER WARNING - comm path 198.18.1.11->198.18.1.12 to s2 is down"
        )
        brief = s1.cli("status", "--brief")
        assert brief.returncode == 8
        assert "1/2 comm paths up" in brief.stdout.splitlines()[0]
    finally:
        faults.plug(lab.node("s2"), "eth1")
    wait_until(lambda: s1.cli("status").returncode == 0, 5, message="path back")

    # Out of service everywhere: an outage.
    s1.json("out-of-service", TAG)
    check = s1.cli("check")
    assert check.returncode == 2
    assert check.stdout.startswith(f"IPKEEPER CRITICAL - {TAG} is in service nowhere")
    assert s1.cli("status").returncode == 16
    assert s1.cli("check", "--tag", "no-such-thing").returncode == 3  # UNKNOWN
    assert s1.cli("check", "--bogus").returncode == 3
    s1.json("in-service", TAG)

    # A peer dead: every path to it down too (4 + 8).
    faults.crash(lab.node("s2"))
    wait_until(lambda: not peer_alive(s1, "s2"), 5, message="s2 dead")
    dead = s1.cli("status")
    assert dead.returncode == 12, dead.stdout
    assert "degraded: s2 is dead (every comm path down)" in dead.stdout
    check = s1.cli("check")
    assert (check.returncode, check.stdout.split(" - ")[0]) == (1, "IPKEEPER WARNING")
    faults.recover(lab.node("s2"))


def test_check_and_status_without_a_daemon(tmp_path: os.PathLike[str]) -> None:
    env = {"IPKEEPER_SOCKET": f"{tmp_path}/none.sock"}
    check = run_cli("check", env=env)
    assert check.returncode == 2 and check.stdout.startswith("IPKEEPER CRITICAL - no ipkeeperd")
    status = run_cli("status", env=env)
    assert status.returncode == 1 and status.stderr.startswith("error: daemon: no ipkeeperd")


def test_events_from_one_server_show_every_servers_events(
    pair: tuple[LabServer, LabServer],
) -> None:
    s1, s2 = pair
    vip_on_both(s1)
    s2.json("pinglist", TAG, "add", "198.18.0.1")  # logged by s2 alone
    text = s1.cli("events", "--limit", "200").stdout
    lines = text.splitlines()
    mine = next(line for line in lines if "ping list for 198.18.0.0/24: 198.18.0.1" in line)
    assert f" s2 [{TAG}] admin: ping list" in mine
    assert mine[:4].isdigit() and mine[4] == "-" and mine[10] == " "  # the date comes first
    times = [line[:23] for line in lines]
    assert times == sorted(times)  # merged by time
    assert any(f" s1 [{TAG}] created:" in line for line in lines)

    only = s1.json("events", "--server", "s2", "--tag", TAG, "--since", "10m", "--kind", "admin")
    assert only["servers"] == ["s2"] and only["unreachable"] == []
    assert [e["message"] for e in only["events"]] == ["ping list for 198.18.0.0/24: 198.18.0.1"]
    assert s1.json("events", "--since", "2000-01-01", "--tag", "nothing")["events"] == []
    wrong = s1.cli("events", "--server", "s9")
    assert wrong.returncode == 1 and wrong.stderr.startswith(
        "error: server: s9 is not a server of this cluster"
    )
    bad = s1.cli("events", "--since", "yesterday")
    assert bad.returncode == 2 and "'yesterday' is not a time" in bad.stderr


def test_tunables_output_pasted_into_the_file_is_accepted_unchanged(
    servers: dict[str, LabServer],
) -> None:
    s1 = servers["s1"]
    s1.tune(CHECK_INTERVAL=0.3, NOBCASTPING=1, IP_PINGTRIES="many", QUORUM="none")
    before = {t["name"]: t["value"] for t in s1.json("tunables")["tunables"]}
    shown = s1.cli("tunables")
    assert shown.returncode == 0
    assert "NOBCASTPING=1  # file" in shown.stdout.splitlines()
    assert "IP_PINGTRIES=3  # default (invalid 'many': must be a whole number)" in shown.stdout
    s1.tunables.write_text(shown.stdout)
    after = s1.json("tunables")["tunables"]
    assert {t["name"]: t["value"] for t in after} == before
    assert {t["source"] for t in after} == {"file"}


def test_errors_name_the_wrong_thing_and_set_and_pinglist_take_server(
    pair: tuple[LabServer, LabServer],
) -> None:
    s1, s2 = pair
    vip_on_both(s1)
    wrong = s1.cli("extend", TAG, "--target", "s9")
    assert wrong.returncode == 1
    assert (
        wrong.stderr.strip()
        == "error: target: s9 is not a server of this cluster (servers: s1, s2)"
    )
    wrong = s1.cli("in-service", TAG, "--server", "s9")
    assert wrong.stderr.startswith("error: server: s9 is not a server of this cluster")
    already = s1.cli("in-service", TAG)
    assert already.returncode == 0
    assert "already in service on s1: nothing was moved" in already.stderr

    assert s1.json("set", TAG, "source-address", "yes", "--server", "s2")["value"] == "yes"
    assert s2.json("show", TAG)["source_address"] == "yes"
    assert s1.json("show", TAG)["source_address"] == "no"
    s1.json("pinglist", TAG, "add", "198.18.0.1", "--server", "s2")
    assert s2.json("pinglist", TAG)["addresses"] == ["198.18.0.1"]
    assert s1.json("pinglist", TAG)["addresses"] == []
    assert s1.json("pinglist", TAG, "--server", "s2")["server"] == "s2"


def complete(server: LabServer, shell: str, words: str) -> list[str]:
    env = {
        "_IPKEEPER_COMPLETE": f"{shell}_complete",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split(" ")) - 1),
    }
    proc = run_cli(env={**env, "IPKEEPER_SOCKET": str(server.socket)})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def test_shell_completion_offers_tags_and_server_names(pair: tuple[LabServer, LabServer]) -> None:
    s1, _ = pair
    vip_on_both(s1)
    assert f"plain,{TAG}" in complete(s1, "bash", "ipkeeper show ")
    assert complete(s1, "bash", "ipkeeper in-service ip-198.18.0.5") == [f"plain,{TAG}"]
    assert complete(s1, "bash", f"ipkeeper extend {TAG} --target ") == ["plain,s1", "plain,s2"]
    assert complete(s1, "bash", "ipkeeper events --server s") == ["plain,s1", "plain,s2"]
    assert complete(s1, "bash", "ipkeeper sta") == ["plain,status"]
    for shell, marker in (
        ("bash", "complete -o nosort -F"),
        ("zsh", "compdef"),
        ("fish", "complete"),
    ):
        script = s1.cli("completion", shell)
        assert (
            script.returncode == 0
            and marker in script.stdout
            and "_IPKEEPER_COMPLETE" in script.stdout
        )


def test_status_watch_refreshes_until_stopped(pair: tuple[LabServer, LabServer]) -> None:
    s1, _ = pair
    watcher = subprocess.Popen(
        [sys.executable, "-m", "ipkeeper", "status", "--watch", "--json", "--interval", "0.2",
         "--socket", str(s1.socket)],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert watcher.stdout is not None
        first = json.loads(watcher.stdout.readline())
        s1.json("create", "ip", "--address", VIP, "--netmask", "24")
        for _ in range(100):  # each line is a fresh snapshot; the new VIP shows up in one
            snapshot = json.loads(watcher.stdout.readline())
            if snapshot["resources"]:
                break
        assert first["server"] == "s1" and snapshot["resources"][0]["tag"] == TAG
    finally:
        watcher.kill()
        watcher.communicate(timeout=10)
