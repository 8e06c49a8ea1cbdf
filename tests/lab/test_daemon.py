"""One server's daemon driven through the CLI as a user would (R12, R15, R17, R21, R26, R29)."""

from __future__ import annotations

import pytest

from ipkeeper.lab import probe
from ipkeeper.lab.topology import Topology
from ipkeeper.testing import wait_until
from ipkeeper.testing.labtools import LabServer, addr_change
from tests.conftest import App

pytestmark = pytest.mark.lab

VIP = "198.18.0.50"
TAG = f"ip-{VIP}"


def create_vip(s1: LabServer, *extra: str) -> dict:
    return s1.json("create", "ip", "--address", VIP, "--netmask", "255.255.255.0", *extra)


def test_create_ip_brings_it_in_service_and_shows_every_property(
    servers: dict[str, LabServer], lab: Topology
) -> None:
    s1 = servers["s1"]
    created = create_vip(s1)
    assert created["tag"] == TAG and created["state"] == "ISP"
    assert any("not extended" in w for w in created["warnings"])
    assert probe.ping(lab.node("client"), VIP) is not None
    shown = s1.json("show", TAG)
    assert {
        "virtual_ip": VIP,
        "netmask": "255.255.255.0",
        "subnet": "198.18.0.0/24",
        "prefix_bits": 24,
        "interface": "eth0",
        "source_address": "no",
        "restore_recover": "enable",
        "state": "ISP",
        "switchback": "intelligent",
        "parents": [],
        "children": [],
        "equivalents": [{"server": "s1", "tag": TAG, "priority": 1}],
    }.items() <= shown.items()
    assert shown["ping_list"] == []
    human = s1.cli("show", TAG)
    assert (
        human.returncode == 0 and "virtual ip" in human.stdout and "198.18.0.0/24" in human.stdout
    )
    status = s1.json("status")
    assert status["servers"][0]["name"] == "s1"
    assert status["resources"][0]["servers"]["s1"]["state"] == "ISP"


def test_an_address_deleted_by_hand_is_noticed_and_repaired(
    servers: dict[str, LabServer], lab: Topology
) -> None:
    s1 = servers["s1"]
    s1.tune(CHECK_INTERVAL=0.5)
    create_vip(s1)
    addr_change(lab.node("s1"), "eth0", f"{VIP}/24", add=False)
    wait_until(lambda: any(e["kind"] == "recovered" for e in s1.events(TAG)), 3, message="recovery")
    assert s1.has_address(VIP)
    kinds = [(e["kind"], e["message"]) for e in s1.events(TAG)]
    failed = next(m for k, m in kinds if k == "check-failed")
    assert "address: 198.18.0.50 is not configured on eth0" in failed
    assert "local recovery 1/1" in failed
    recovered = next(m for k, m in kinds if k == "recovered")
    assert recovered.startswith("ISP: recovered: 198.18.0.50/24 up on eth0")
    text = s1.cli("events").stdout
    assert "check-failed" in text and "recovered" in text
    assert s1.state(TAG) == "ISP"


def test_app_on_ip_goes_down_first_and_up_last(servers: dict[str, LabServer], app: App) -> None:
    s1 = servers["s1"]
    create_vip(s1)
    s1.json(*app.create_args())
    s1.json("depend", "app", TAG)
    assert s1.json("show", "app")["children"] == [TAG]

    s1.json("out-of-service", TAG)
    assert s1.state("app") == "OSU" and s1.state(TAG) == "OSU"
    assert not s1.has_address(VIP)
    # The application was stopped while its address was still up.
    assert app.log()[-1] == "stop vip=1"

    s1.json("in-service", "app")
    assert s1.state("app") == "ISP" and s1.state(TAG) == "ISP"
    # ... and started only once the address was back.
    assert [line for line in app.log() if line.startswith("start")][-1] == "start vip=1"
    events = [e for e in s1.events() if e["kind"] in ("restore", "remove")]
    order = [(e["tag"], e["kind"]) for e in events[-4:]]
    assert order == [("app", "remove"), (TAG, "remove"), (TAG, "restore"), ("app", "restore")]


def test_a_failing_app_is_recovered_then_marked_osf(
    servers: dict[str, LabServer], app: App
) -> None:
    s1 = servers["s1"]
    s1.tune(CHECK_INTERVAL=0.3, RECOVERY_TRIES=1, RECOVERY_WINDOW=600)
    create_vip(s1)
    s1.json(*app.create_args())
    s1.json("depend", "app", TAG)
    app.mark("sick")
    wait_until(
        lambda: any(e["kind"] == "recovered" for e in s1.events("app")), 5, message="app recovered"
    )
    assert s1.state("app") == "ISP"

    app.mark("broken")
    app.mark("sick")
    wait_until(lambda: s1.state("app") == "OSF", 10, message="app OSF")
    shown = s1.json("show", "app")
    assert (
        "local recovery budget spent" in shown["reason"]
        or "recover command exited 1" in shown["reason"]
    )
    # The whole hierarchy went out of service, the address with it, with the reason recorded.
    assert s1.state(TAG) == "OSF"
    assert "app failed" in s1.json("show", TAG)["reason"]
    assert not s1.has_address(VIP)


def test_tunables_show_sources_and_changes_apply_at_the_next_check(
    servers: dict[str, LabServer],
) -> None:
    s1 = servers["s1"]
    s1.tune(CHECK_INTERVAL=0.3, IP_PINGTRIES="many")
    shown = {t["name"]: t for t in s1.json("tunables")["tunables"]}
    assert shown["CHECK_INTERVAL"] == {"name": "CHECK_INTERVAL", "value": 0.3, "source": "file"}
    assert shown["IP_PINGTRIES"]["value"] == 3
    assert shown["IP_PINGTRIES"]["source"].startswith("default (invalid 'many'")
    assert shown["NOBCASTPING"]["source"] == "default"

    create_vip(s1)

    def last_check() -> str:
        return s1.json("show", TAG).get("last_check", {}).get("reason", "")

    wait_until(
        lambda: last_check().startswith("saved responder"), 3, message="saved responder used"
    )
    s1.tune(CHECK_INTERVAL=0.3, IP_NOSAVEREPLY=1)  # no restart
    wait_until(
        lambda: "answered a ping of 198.18.0.255" in last_check(), 3, message="broadcast again"
    )


def test_source_address_setting_through_the_daemon(servers: dict[str, LabServer]) -> None:
    s1 = servers["s1"]
    create_vip(s1)
    changed = s1.json("set", TAG, "source-address", "yes")
    assert changed["notes"] == ["takes effect at the next bring-up"]
    shown = s1.json("show", TAG)
    assert shown["source_address"] == "yes"
    assert shown["source_address_effective"].startswith("no (takes effect at the next bring-up")
    s1.json("out-of-service", TAG)
    s1.json("in-service", TAG)
    assert s1.json("show", TAG)["source_address_effective"] == "yes"
    disabled = s1.json("set", TAG, "restore-recover", "disable")
    assert s1.state(TAG) == "ISU" and disabled["value"] == "disable"
    assert s1.has_address(VIP)  # disabling does not take the address down (R15)


def test_events_follow_prints_new_events_as_they_happen(servers: dict[str, LabServer]) -> None:
    import subprocess
    import sys
    import threading

    from ipkeeper.testing import wait_until

    s1 = servers["s1"]
    follower = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ipkeeper",
            "events",
            "--follow",
            "--limit",
            "1",
            "--socket",
            str(s1.socket),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(
        target=lambda: lines.extend(iter(follower.stdout.readline, "")), daemon=True
    )  # type: ignore[union-attr]
    reader.start()
    try:
        wait_until(lambda: lines, 10, message="the follower's first line")
        create_vip(s1)
        wait_until(
            lambda: any("created: ip resource in service on s1" in line for line in lines),
            10,
            message="the new event on the follower",
        )
    finally:
        follower.kill()
        follower.communicate()
        reader.join(timeout=5)


def test_the_api_socket_is_root_only(servers: dict[str, LabServer]) -> None:
    import stat

    assert stat.S_IMODE(servers["s1"].socket.stat().st_mode) == 0o600
