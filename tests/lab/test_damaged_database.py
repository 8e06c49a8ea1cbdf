"""A damaged database at start-up (issue 11, item 13): the daemon refuses to start with one
line naming the file and the damage, before it joins the cluster, and changes nothing; or,
with `damaged_database = "resync"`, sets the file aside and learns the definitions from
its peer."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ipkeeper.lab import daemons
from ipkeeper.lab.topology import Topology
from ipkeeper.testing import wait_until
from ipkeeper.testing.labtools import LabServer

pytestmark = pytest.mark.lab

VIP = "198.18.0.50"
TAG = f"ip-{VIP}"


def truncated(db: Path) -> None:
    db.write_bytes(db.read_bytes()[: 4096 * 3])


def bad_header(db: Path) -> None:
    db.write_bytes(b"\0" * 16 + db.read_bytes()[16:])


def random_bytes(db: Path) -> None:
    db.write_bytes(os.urandom(db.stat().st_size))


def json_flipped(db: Path) -> None:
    """A byte of the VIP's properties flipped on disk: the pages are sound, the row is not."""
    data = db.read_bytes()
    needle = f'{{"address": "{VIP}"'.encode()
    assert needle in data
    db.write_bytes(data.replace(needle, b"[" + needle[1:]))


def version_zero(db: Path) -> None:
    data = bytearray(db.read_bytes())
    data[60:64] = b"\0\0\0\0"  # the header's user_version, where the schema version is kept
    db.write_bytes(bytes(data))


DAMAGE: list[tuple[Callable[[Path], None], str]] = [
    (truncated, "damaged: database disk image is malformed"),
    (bad_header, "not an SQLite database (its header is b'\\x00\\x00"),
    (random_bytes, "not an SQLite database (its header is "),
    (json_flipped, "table instances, row resource_id="),
    (version_zero, "schema version 0 but it holds tables (dependencies, events, instances, "),
]


@pytest.fixture(scope="module")
def vip_on_s1(lab: Topology) -> Iterator[tuple[LabServer, LabServer]]:
    """The VIP in service on s1 and extended to s2; s1's daemon stopped, its database kept
    aside so each test starts from it."""
    s1, s2 = (LabServer(node) for node in lab.servers)
    for server in (s1, s2):
        server.tune()
    s1.json("create", "ip", "--address", VIP, "--netmask", "24")
    s1.json("extend", TAG, "--target", "s2")
    wait_until(lambda: s2.state(TAG) == "OSU", 10, message="the VIP known to s2")
    daemons.stop(s1.node)
    db = daemons.server_dir(s1.node) / "state" / "ipkeeper.db"
    shutil.copy(db, db.with_name("sound.db"))
    yield s1, s2
    restore(db)
    daemons.start(s1.node)


def restore(db: Path) -> None:
    for stale in db.parent.glob("ipkeeper.db*"):
        stale.unlink()
    shutil.copy(db.with_name("sound.db"), db)


def run_daemon(server: LabServer, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ipkeeper.lab.nsexec", server.node.namespace, "--",
         sys.executable, "-m", "ipkeeper.daemon", "--config", str(daemons.config_path(server.node))],
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


@pytest.mark.parametrize(("damage", "reason"), DAMAGE, ids=[d[0].__name__ for d in DAMAGE])
def test_a_damaged_database_is_refused_before_joining(
    vip_on_s1: tuple[LabServer, LabServer], damage: Callable[[Path], None], reason: str
) -> None:
    s1, s2 = vip_on_s1
    db = daemons.server_dir(s1.node) / "state" / "ipkeeper.db"
    restore(db)
    damage(db)
    damaged = db.read_bytes()
    since = s2.mark()
    proc = run_daemon(s1)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"ipkeeperd: error: database: {db}: {reason}"), lines[0]
    assert lines[0].endswith('or set damaged_database = "resync" in [server]')
    assert proc.returncode == 1
    assert db.read_bytes() == damaged  # not repaired, not replaced, not set aside
    assert not daemons.socket_path(s1.node).exists()
    assert s1.has_address(VIP) and not s2.has_address(VIP)  # its kernel as it was
    # It never joined: s2 never heard from it.
    assert not [e for e in s2.events(after=since) if "s1 is alive" in e["message"]]
    assert not s2.status()["servers"][1]["alive"]


def test_resync_sets_the_file_aside_and_learns_the_definitions_from_the_peer(
    vip_on_s1: tuple[LabServer, LabServer],
) -> None:
    s1, s2 = vip_on_s1
    db = daemons.server_dir(s1.node) / "state" / "ipkeeper.db"
    restore(db)
    json_flipped(db)
    damaged = db.read_bytes()
    config = daemons.config_path(s1.node)
    sound_config = config.read_text()
    config.write_text(sound_config.replace("[api]", 'damaged_database = "resync"\n\n[api]', 1))
    try:
        daemons.start(s1.node)
        wait_until(lambda: s1.state(TAG) is not None, 15, message="the definition learnt from s2")
        assert s2.status()["servers"][1]["alive"]
        aside = db.parent.glob("ipkeeper.db.damaged-*")
        kept = [p.read_bytes() for p in aside if not p.name.endswith(("-wal", "-shm"))]
        assert kept == [damaged]
        notes = [e["message"] for e in s1.events() if e["kind"] == "database"]
        assert len(notes) == 1 and "table instances, row resource_id=" in notes[0], notes
        assert "starting with an empty database, the definitions come from the peers" in notes[0]
    finally:
        daemons.stop(s1.node)
        config.write_text(sound_config)
