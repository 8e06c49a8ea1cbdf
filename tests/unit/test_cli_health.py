"""What `status` and `check` make of a status object, --since, and tunables as file lines."""

from __future__ import annotations

import copy
import datetime
from typing import Any

import pytest

from ipkeeper.cli import render
from ipkeeper.cli.health import Degraded, Level, assess
from ipkeeper.cli.when import parse_since, stamp
from ipkeeper.config.tunables import TUNABLES, parse_lines

PATH_UP = {"peer": "s2", "local": "198.18.0.11", "remote": "198.18.0.12", "state": "up"}
PATH2_UP = {"peer": "s2", "local": "198.18.1.11", "remote": "198.18.1.12", "state": "up"}
HEALTHY: dict[str, Any] = {
    "server": "s1",
    "servers": [
        {"name": "s1", "alive": True, "local": True, "witness": False, "comm_paths": []},
        {"name": "s2", "alive": True, "local": False, "witness": False,
         "comm_paths": [PATH_UP, PATH2_UP]},
    ],
    "quorum": {"mode": "none", "votes": 2, "of": 2, "has_quorum": True, "note": ""},
    "resources": [
        {"tag": "web", "id": "a", "type": "app", "switchback": "intelligent",
         "parents": [], "children": ["ip-198.18.0.50"],
         "servers": {"s1": {"tag": "web", "priority": 1, "state": "ISP", "reason": "created",
                            "since": 1767225600.0},
                     "s2": {"tag": "web", "priority": 10, "state": "OSU", "reason": ""}}},
        {"tag": "ip-198.18.0.50", "id": "b", "type": "ip", "switchback": "intelligent",
         "parents": ["web"], "children": [],
         "servers": {"s1": {"tag": "ip-198.18.0.50", "priority": 1, "state": "ISP",
                            "reason": "created", "since": 1767225500.0},
                     "s2": {"tag": "ip-198.18.0.50", "priority": 10, "state": "OSU",
                            "reason": ""}}},
    ],
}  # fmt: skip


def changed(**edits: Any) -> dict[str, Any]:
    status = copy.deepcopy(HEALTHY)
    for path, value in edits.items():
        node: Any = status
        *parents, last = path.split("__")
        for key in parents:
            node = node[int(key) if key.isdigit() else key]
        node[int(last) if last.isdigit() else last] = value
    return status


def test_a_healthy_cluster_is_exit_0_and_ok_with_perfdata() -> None:
    health = assess(HEALTHY)
    assert (health.exit_code, health.level) == (0, Level.OK)
    assert health.plugin_line() == (
        "IPKEEPER OK - 2 of 2 servers alive, 2 of 2 comm paths up, 2 of 2 resources in service"
        " | servers_alive=2;;;0;2 paths_up=2;;;0;2 resources_in_service=2;;;0;2"
        " instances_failed=0;;;0;"
    )


def test_a_comm_path_down_is_a_warning() -> None:
    health = assess(changed(servers__1__comm_paths__1__state="down"))
    assert health.exit_code == Degraded.PATH_DOWN == 8
    assert health.level is Level.WARNING
    assert health.summary() == "comm path 198.18.1.11->198.18.1.12 to s2 is down"


def test_a_dead_peer_is_a_warning_while_everything_is_still_served() -> None:
    status = changed(servers__1__alive=False)
    for res in status["resources"]:
        res["servers"]["s2"]["stale"] = True
    health = assess(status)
    assert health.exit_code == Degraded.PEER_DEAD | Degraded.PATH_DOWN == 12
    assert health.level is Level.WARNING
    assert health.summary() == "s2 is dead (every comm path down)"


def test_a_resource_served_only_by_a_dead_server_is_critical() -> None:
    status = changed(servers__1__alive=False)
    for res in status["resources"]:
        res["servers"]["s1"]["state"] = "OSU"
        res["servers"]["s2"].update(state="ISP", stale=True)
    health = assess(status)
    assert health.exit_code & Degraded.NOWHERE
    assert health.level is Level.CRITICAL
    assert "web is in service nowhere" in health.summary()


def test_a_failed_instance_and_no_quorum() -> None:
    status = changed(resources__0__servers__s2__state="OSF")
    assert assess(status).exit_code == Degraded.FAILED
    assert assess(status).level is Level.WARNING
    assert assess(status, ["ip-198.18.0.50"]).level is Level.OK  # --tag looks at that one only
    status = changed(quorum__has_quorum=False, quorum__votes=1)
    assert assess(status).exit_code == Degraded.NO_QUORUM
    assert assess(status).level is Level.CRITICAL


def test_a_database_that_cannot_be_written_is_a_warning() -> None:
    status = changed()
    status["store"] = {"writable": True, "path": "/var/lib/ipkeeper/ipkeeper.db"}
    assert assess(status).exit_code == 0
    status["store"].update(
        writable=False,
        reason="cannot write /var/lib/ipkeeper/ipkeeper.db (database or disk is full)",
    )
    health = assess(status)
    assert health.exit_code == Degraded.STORE == 128 and health.level is Level.WARNING
    assert health.summary() == (
        "s1 cannot write /var/lib/ipkeeper/ipkeeper.db (database or disk is full): "
        "states kept in memory, changes refused"
    )


def test_brief_is_one_line_for_the_cluster_and_one_per_hierarchy() -> None:
    lines = render.brief_lines(HEALTHY, assess(HEALTHY))
    assert len(lines) == 2
    assert lines[0] == "s1: 2/2 servers alive, 2/2 comm paths up, quorum none: healthy"
    assert lines[1] == (
        f"web > ip-198.18.0.50: ISP on s1 since {stamp(1767225600.0)} (standby: s2 OSU): created"
    )


def test_status_says_what_guards_each_hierarchy_and_brief_only_the_unguarded() -> None:
    guarded = {"tag": "web", "resources": 2, "servers": ["s1", "s2"], "guarded": True,
               "guard": "unique-address check", "unguarded": []}  # fmt: skip
    bare = {"tag": "db", "resources": 1, "servers": ["s1", "s2"], "guarded": False,
            "guard": "nothing: may run on two servers if the comm paths are cut "
            "(UNGUARDED_APPS=allow)", "unguarded": ["db"]}  # fmt: skip
    lone = {**guarded, "tag": "solo", "servers": ["s1"], "guard": "not needed: on one server only"}
    status = changed(hierarchies=[bare, lone, guarded])
    assert render.guard_line(status) == (
        "guarded against running on two servers by unique-address check: web; "
        "[red]nothing: may run on two servers if the comm paths are cut "
        "(UNGUARDED_APPS=allow): db[/red]"
    )
    assert render.brief_lines(status, assess(status))[-1] == (
        "guarded against running on two servers by nothing: may run on two servers if the "
        "comm paths are cut (UNGUARDED_APPS=allow): db"
    )
    assert render.guard_line(changed(hierarchies=[guarded]), brief=True) is None
    assert len(render.brief_lines(HEALTHY, assess(HEALTHY))) == 2  # an older daemon's status


NOW = datetime.datetime(2026, 5, 1, 12, 0, 0).timestamp()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", NOW - 90),
        ("10m", NOW - 600),
        ("1h30m", NOW - 5400),
        ("2d", NOW - 172800),
        ("11:30", datetime.datetime(2026, 5, 1, 11, 30).timestamp()),
        ("13:00:05", datetime.datetime(2026, 4, 30, 13, 0, 5).timestamp()),  # yesterday's
        ("2026-04-01", datetime.datetime(2026, 4, 1).timestamp()),
        ("2026-04-01 08:15", datetime.datetime(2026, 4, 1, 8, 15).timestamp()),
        ("2026-04-01T08:15:30", datetime.datetime(2026, 4, 1, 8, 15, 30).timestamp()),
    ],
)
def test_since_takes_spans_times_of_day_and_dates(text: str, expected: float) -> None:
    assert parse_since(text, NOW) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["", "yesterday", "10", "10x", "25:00", "2026-13-01"])
def test_since_refuses_what_it_cannot_read_and_gives_examples(text: str) -> None:
    with pytest.raises(ValueError, match="examples: 10m"):
        parse_since(text, NOW)


def test_every_time_printed_carries_its_date() -> None:
    assert stamp(NOW) == "2026-05-01 12:00:00"
    assert stamp(NOW + 0.25, millis=True) == "2026-05-01 12:00:00.250"


def test_tunables_print_as_lines_the_file_takes_back_unchanged() -> None:
    values = [*(t.default for t in TUNABLES.values()), True, 0.1 + 0.2, 0.015, "majority"]
    names = [*TUNABLES, "NOBCASTPING", "CHECK_INTERVAL", "IP_UNIQUE_WAIT", "QUORUM"]
    data = {
        "file": "/etc/default/ipkeeper",
        "tunables": [
            {"name": n, "value": v, "source": "default (invalid 'x y': must be 0 or 1)"}
            for n, v in zip(names, values, strict=True)
        ],
    }
    lines = render.tunables_lines(data)
    assert lines[0].startswith("# ")
    assert "NOBCASTPING=0  # default (invalid 'x y': must be 0 or 1)" in lines
    parsed = parse_lines("\n".join(lines[: len(TUNABLES) + 1]))
    for name, tunable in TUNABLES.items():
        assert tunable.parse(parsed[name]) == tunable.default, name
    again = parse_lines("\n".join(lines[len(TUNABLES) + 1 :]))
    assert [TUNABLES[n].parse(again[n]) for n in names[len(TUNABLES) :]] == values[len(TUNABLES) :]


def a_group_of(count: int, odd: str | None = None) -> dict[str, Any]:
    status = copy.deepcopy(HEALTHY)
    tags = [f"ip-198.18.4.{i}" for i in range(1, count + 1)]

    def instance(tag: str, state: str, priority: int) -> dict[str, Any]:
        return {"tag": tag, "priority": priority, "state": state, "reason": ""}

    status["resources"] = [
        {"tag": "vips", "id": "g", "type": "group", "switchback": "intelligent",
         "parents": [], "children": tags,
         "servers": {"s1": instance("vips", "ISP", 1), "s2": instance("vips", "OSU", 10)}},
    ] + [
        {"tag": tag, "id": tag, "type": "ip", "switchback": "intelligent",
         "parents": ["vips"], "children": [],
         "servers": {"s1": instance(tag, "OSF" if tag == odd else "ISP", 1),
                     "s2": instance(tag, "OSU", 10)}}
        for tag in tags
    ]  # fmt: skip
    return status


def rendered(data: dict[str, Any], every: bool = False) -> str:
    from rich.console import Console

    console = Console(record=True, width=200)
    for table in render.status_tables(data, every):
        console.print(table)
    return console.export_text()


def test_a_large_group_is_shown_as_its_root_and_a_count_naming_what_differs() -> None:
    text = rendered(a_group_of(40, odd="ip-198.18.4.7"))
    assert "+ 40 more" in text and "40 resources" in text
    assert "ISP ×39" in text and "OSF ×1: ip-198.18.4.7" in text and "OSU ×40" in text
    assert "ip-198.18.4.12 " not in text  # not one row per VIP
    assert "ip-198.18.4.12 " in rendered(a_group_of(40), every=True)
    assert "+ " not in rendered(a_group_of(5))  # small hierarchies are listed in full
    (line,) = render.brief_lines(a_group_of(40), assess(a_group_of(40)))[1:]
    assert line.startswith("vips (+40 resources): ISP on s1")
