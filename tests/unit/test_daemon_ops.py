"""Logging levels, journal priorities, JSON lines and rate limits; the notify protocol;
what a reload applies at once and what waits for a restart."""

from __future__ import annotations

import json
import logging
import os
import socket
from pathlib import Path

import pytest

from ipkeeper.config.daemon import DaemonConfig
from ipkeeper.logging import LineFormatter, RateLimit, event_level
from ipkeeper.reload import plan
from ipkeeper.sdnotify import Notifier


@pytest.mark.parametrize(
    ("kind", "message", "level"),
    [
        ("failover", "s1 died holding it; taking it over", logging.WARNING),
        ("membership", "s2 is dead: every comm path is down", logging.WARNING),
        ("membership", "s2 is alive", logging.INFO),
        ("path", "comm path 198.18.1.11->198.18.1.12 to s2 down: no frame for 0.2 s", logging.WARNING),
        ("path", "comm path 198.18.1.11->198.18.1.12 to s2 up", logging.INFO),
        ("security", "dropped a frame on x: bad HMAC", logging.WARNING),
        ("recovery-failed", "address: gone", logging.ERROR),
        ("config", "reload refused, the configuration in force is kept: x", logging.ERROR),
        ("config", "peer changed in x: kept as they are until the next restart", logging.WARNING),
        ("admin", "switchback set to automatic", logging.INFO),
        ("created", "ISP: created", logging.INFO),
    ],
)  # fmt: skip
def test_what_goes_wrong_is_a_warning_or_worse(kind: str, message: str, level: int) -> None:
    assert event_level(kind, message) == level


def record(message: str, level: int = logging.WARNING) -> logging.LogRecord:
    return logging.LogRecord("ipkeeper.events", level, __file__, 1, message, None, None)


def test_journal_lines_carry_the_syslog_priority_and_json_lines_parse() -> None:
    journal = LineFormatter("text", journal=True)
    assert journal.format(record("s2 is dead")) == "<4>ipkeeper.events: s2 is dead"
    assert journal.format(record("ok", logging.INFO)).startswith("<6>")
    assert journal.format(record("bad", logging.ERROR)).startswith("<3>")
    assert journal.format(record("worse", logging.CRITICAL)).startswith("<2>")
    plain = LineFormatter("text").format(record("s2 is dead"))
    assert plain.endswith(" WARNING ipkeeper.events: s2 is dead") and not plain.startswith("<")
    data = json.loads(LineFormatter("json").format(record('say "hi"')))
    assert (data["level"], data["logger"], data["message"]) == (
        "warning",
        "ipkeeper.events",
        'say "hi"',
    )
    assert LineFormatter("json", journal=True).format(record("x")).startswith('<4>{"ts": ')


def test_a_repeated_line_is_shown_a_few_times_then_counted() -> None:
    limit = RateLimit(burst=3, window=0.2)
    shown = [limit.filter(record("same")) for _ in range(10)]
    assert shown == [True] * 3 + [False] * 7
    assert limit.filter(record("another"))
    limit._seen[("ipkeeper.events", logging.WARNING, "same")][0] -= 1.0  # the window has passed
    later = record("same")
    assert limit.filter(later)
    assert later.getMessage() == "same (and 7 more like it, not shown)"


def test_notifications_go_to_the_socket_and_leave_the_environment() -> None:
    path = Path("/tmp") / f"ipk-notify-{id(object())}"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(path))
    try:
        env = {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "2000000", "KEEP": "1"}
        notifier = Notifier(env)
        assert env == {"KEEP": "1"}  # children of the daemon do not inherit them
        assert notifier.watchdog_seconds == 2.0
        assert notifier.ready("s1: fine")
        assert listener.recv(100) == b"READY=1\nSTATUS=s1: fine"
        notifier.close()
    finally:
        listener.close()
        path.unlink()
    assert not Notifier({}).ready("nobody listens")
    assert Notifier({"WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"}).watchdog_seconds is None


def config(**server: object) -> DaemonConfig:
    paths = [{"local": "198.18.0.11", "remote": "198.18.0.12"}]
    return DaemonConfig.model_validate(
        {
            "server": {"name": "s1", **server},
            "peer": [{"name": "s2", "paths": paths}],
        }
    )


def test_a_reload_applies_the_run_time_settings_and_keeps_the_rest() -> None:
    old = config()
    new = config(log_level="debug", state_dir="/srv/ipk").model_copy(
        update={"peer": [], "api": old.api.model_copy(update={"listen": "198.18.0.11:7481"})}
    )
    change = plan(old, new)
    assert change.live == [
        "server.log_level: info -> debug",
        "api.listen: none -> 198.18.0.11:7481",
    ]
    assert change.restart == ["server.state_dir", "peer (peers added, removed or made witnesses)"]
    assert change.config.server.log_level == "debug"
    assert change.config.server.state_dir == old.server.state_dir
    assert change.config.peer == old.peer
    assert plan(old, old).live == [] and plan(old, old).restart == []


def test_a_reload_changes_a_peer_s_comm_paths_at_run_time() -> None:
    old = config()
    second = {"local": "198.18.1.11", "remote": "198.18.1.12"}
    paths = [{"local": "198.18.0.11", "remote": "198.18.0.12"}, second]
    new = DaemonConfig.model_validate(
        {"server": {"name": "s1"}, "peer": [{"name": "s2", "paths": paths}]}
    )
    change = plan(old, new)
    assert change.live == [
        "peer.s2.path: 198.18.0.11->198.18.0.12 -> "
        "198.18.0.11->198.18.0.12, 198.18.1.11->198.18.1.12"
    ]
    assert change.restart == []
    assert change.config.peer == new.peer


def test_a_reload_applies_the_tcp_api_with_its_tls_and_tokens_but_not_the_socket() -> None:
    paths = [{"local": "198.18.0.11", "remote": "198.18.0.12"}]

    def config(**api: object) -> DaemonConfig:
        return DaemonConfig.model_validate(
            {"server": {"name": "s1"}, "api": api, "peer": [{"name": "s2", "paths": paths}]}
        )

    old = config(listen="127.0.0.1:7480", token_file="/etc/ipk/admin")
    new = config(
        socket="/run/other.sock",
        listen="198.18.0.11:7480",
        token_file="/etc/ipk/admin",
        viewer_token_file="/etc/ipk/viewer",
        tls_cert="/etc/ipk/api.crt",
        tls_key="/etc/ipk/api.key",
    )
    change = plan(old, new)
    assert change.live == [
        "api.listen: 127.0.0.1:7480 -> 198.18.0.11:7480",
        "api.viewer_token_file: none -> /etc/ipk/viewer",
        "api.tls_cert: none -> /etc/ipk/api.crt",
        "api.tls_key: none -> /etc/ipk/api.key",
    ]
    assert change.restart == ["api.socket"]
    # What is in force is the new TCP API whole: never the new address without its TLS.
    assert change.config.api == new.api.model_copy(update={"socket": old.api.socket})
    assert change.config.api.tls


def test_journal_mode_only_when_journald_holds_our_stderr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ipkeeper.logging import under_journal

    with (tmp_path / "stream").open("w") as stream, (tmp_path / "other").open("w") as other:
        st = os.fstat(stream.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        assert under_journal(stream)
        assert not under_journal(other)  # inherited by a process whose stderr went elsewhere
        monkeypatch.setenv("JOURNAL_STREAM", "garbage")
        assert not under_journal(stream)
