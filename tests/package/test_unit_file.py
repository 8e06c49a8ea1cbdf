"""The systemd unit: a notify service with a watchdog and a reload, hardened at least as
much as Debian's keepalived unit, by systemd-analyze's own measure."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

UNIT = Path(__file__).resolve().parents[2] / "deploy" / "ipkeeperd.service"
# /lib/systemd/system/keepalived.service of Debian 12's keepalived 1:2.2.7-1, as shipped.
KEEPALIVED = """\
[Unit]
Description=Keepalive Daemon (LVS and VRRP)
After=network-online.target
Wants=network-online.target
ConditionFileNotEmpty=/etc/keepalived/keepalived.conf

[Service]
Type=notify
EnvironmentFile=-/etc/default/keepalived
ExecStart=/usr/sbin/keepalived --dont-fork $DAEMON_ARGS
ExecReload=/bin/kill -HUP $MAINPID

[Install]
WantedBy=multi-user.target
"""


def exposure(unit: Path) -> float:
    done = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    found = re.search(r"Overall exposure level for \S+: ([\d.]+)", done.stdout + done.stderr)
    assert found, done.stdout + done.stderr
    return float(found.group(1))


def test_the_unit_is_no_more_exposed_than_keepalived(tmp_path: Path) -> None:
    keepalived = tmp_path / "keepalived.service"
    keepalived.write_text(KEEPALIVED)
    ours, theirs = exposure(UNIT), exposure(keepalived)
    print(f"systemd-analyze exposure: ipkeeperd {ours}, keepalived {theirs}")
    assert ours < theirs


def test_the_unit_is_a_notify_service_with_a_watchdog_and_a_reload() -> None:
    settings = dict(
        line.split("=", 1) for line in UNIT.read_text().splitlines() if re.match(r"^\w+=", line)
    )
    assert settings["Type"] == "notify" and settings["NotifyAccess"] == "main"
    assert int(settings["WatchdogSec"]) > 0
    assert settings["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert settings["KillMode"] == "process"  # resources stay up when the daemon stops
    assert settings["ExecStart"].startswith("/usr/sbin/ipkeeperd ")
