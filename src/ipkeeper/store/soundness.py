"""Is the database sound? Checked at start-up, before the daemon decides or joins anything.

A database that is not sound (not an SQLite file, a bad header, truncated,
pages that SQLite's `quick_check` finds broken, a schema that is not the one
its version says, a row that does not decode to what the daemon expects)
raises DamagedDatabase with one line saying where and why. What to do then
is the daemon's policy (refuse to start, or set the file aside and learn the
definitions from a peer: `damaged_database` in the configuration).

What no check can see: a flipped byte that leaves a row valid (a changed
letter in an interface name) decodes as a valid row; SQLite keeps no
checksum of its pages.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

HEADER = b"SQLite format 3\x00"
STATES = ("ISP", "ISU", "OSU", "OSF")
PENDING = ("create", "restore", "remove", "delete")
SWITCHBACK = ("intelligent", "automatic")
WAL_SUFFIXES = ("-wal", "-shm")


class UnusableDatabase(Exception):
    """The database cannot be used; the message says where and why, in one line."""


class DamagedDatabase(UnusableDatabase):
    """The database is damaged: it cannot be trusted."""


class NewerDatabase(UnusableDatabase):
    """The database was written by a newer ipkeeper (sound, but not for this one)."""


def check_header(path: Path) -> None:
    """Refuse a file that is not an SQLite database at all (an empty file is a new one)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(len(HEADER))
    except FileNotFoundError:
        return
    except OSError as exc:
        raise DamagedDatabase(f"{path}: cannot be read: {exc.strerror or exc}") from None
    if head and head != HEADER:
        raise DamagedDatabase(f"{path}: not an SQLite database (its header is {head[:16]!r})")


def check_pages(conn: sqlite3.Connection, path: Path) -> None:
    """PRAGMA quick_check: every page and record well-formed (not index contents)."""
    rows = [str(r[0]) for r in conn.execute("PRAGMA quick_check").fetchall()]
    if rows != ["ok"]:
        first = " ".join(rows[0].split()) if rows else "no answer"
        more = f" (and {len(rows) - 1} more problems)" if len(rows) > 1 else ""
        raise DamagedDatabase(f"{path}: damaged: {first}{more}")


@functools.cache
def expected_schema(version: int, migrations: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """Tables and their columns after the first `version` migrations (built in memory)."""
    conn = sqlite3.connect(":memory:")
    try:
        for script in migrations[:version]:
            conn.executescript(script)
        return _schema(conn)
    finally:
        conn.close()


def _schema(conn: sqlite3.Connection) -> dict[str, tuple[str, ...]]:
    names = [
        str(r[0])
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    return {
        name: tuple(str(c[1]) for c in conn.execute(f'PRAGMA table_info("{name}")'))
        for name in sorted(names)
    }


def check_schema(
    conn: sqlite3.Connection, path: Path, version: int, migrations: tuple[str, ...]
) -> None:
    """The tables and columns must be exactly those of the schema version recorded."""
    found = _schema(conn)
    if version == 0:
        if found:
            raise DamagedDatabase(
                f"{path}: schema version 0 but it holds tables ({', '.join(found)}): "
                "damaged, or not a database of ipkeeper"
            )
        return
    wanted = expected_schema(version, migrations)
    for table, columns in wanted.items():
        if table not in found:
            raise DamagedDatabase(f"{path}: schema version {version} but table {table} is missing")
        if found[table] != columns:
            raise DamagedDatabase(
                f"{path}: table {table} has columns ({', '.join(found[table])}), "
                f"not those of schema version {version} ({', '.join(columns)})"
            )
    extra = sorted(set(found) - set(wanted))
    if extra:
        raise DamagedDatabase(
            f"{path}: schema version {version} but it holds unknown tables ({', '.join(extra)})"
        )


# -- rows -------------------------------------------------------------------------


def _text(value: object) -> bool:
    return isinstance(value, str) and value != ""


def _json(kind: type) -> Callable[[object], bool]:
    def ok(value: object) -> bool:
        if not isinstance(value, str):
            return False
        try:
            return isinstance(json.loads(value), kind)
        except ValueError:
            return False

    return ok


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _priority(value: object) -> bool:
    return isinstance(value, int) and 1 <= value <= 999


def _version(value: object) -> bool:
    return isinstance(value, int) and value >= 1


def _one_of(*allowed: object) -> Callable[[object], bool]:
    return lambda value: value in allowed


def _string_list(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        decoded = json.loads(value)
    except ValueError:
        return False
    return isinstance(decoded, list) and all(isinstance(v, str) for v in decoded)


Rule = tuple[str, Callable[[object], bool], str]  # column, test, what it must be

# Every table the daemon decodes at start (the event log is history: a row of it that
# does not decode is shown as such, it decides nothing).
ROWS: dict[str, tuple[str, tuple[Rule, ...]]] = {
    "resources": ("id", (
        ("id", _text, "a resource id"),
        ("kind", _text, "a resource type"),
        ("switchback", _one_of(*SWITCHBACK), "intelligent or automatic"),
        ("version", _version, "a version number"),
        ("created_at", _number, "a time"),
    )),
    "instances": ("resource_id", (
        ("resource_id", _text, "a resource id"),
        ("server", _text, "a server name"),
        ("tag", _text, "a tag"),
        ("priority", _priority, "a priority 1..999"),
        ("props", _json(dict), "a JSON object"),
    )),
    "dependencies": ("parent_id", (
        ("parent_id", _text, "a resource id"),
        ("child_id", _text, "a resource id"),
    )),
    "local_state": ("resource_id", (
        ("resource_id", _text, "a resource id"),
        ("state", _one_of(*STATES), "ISP, ISU, OSU or OSF"),
        ("pending", _one_of(None, *PENDING), "empty or an action in flight"),
        ("reason", lambda v: isinstance(v, str), "text"),
        ("since", _number, "a time"),
    )),
    "tombstones": ("resource_id", (
        ("resource_id", _text, "a resource id"),
        ("tag", lambda v: isinstance(v, str), "a tag"),
        ("version", _version, "a version number"),
    )),
    "ping_lists": ("subnet", (
        ("subnet", _text, "a subnet"),
        ("addresses", _string_list, "a JSON list of addresses"),
    )),
    "settings": ("key", (
        ("key", _text, "a name"),
        ("value", lambda v: isinstance(v, str), "text"),
    )),
}  # fmt: skip


def check_rows(conn: sqlite3.Connection, path: Path) -> int:
    """Every row the daemon decodes at start, as it will decode it; the rows checked."""
    checked = 0
    for table, (key, rules) in ROWS.items():
        for row in _rows(conn, table):
            checked += 1
            for column, test, what in rules:
                value = row[column]
                if not test(value):
                    raise DamagedDatabase(
                        f"{path}: table {table}, row {key}={row[key]!r:.40}: "
                        f"{column} is {value!r:.60}, not {what}"
                    )
    return checked


def _rows(conn: sqlite3.Connection, table: str) -> Iterator[sqlite3.Row]:
    cursor = conn.execute(f"SELECT * FROM {table}")
    cursor.row_factory = sqlite3.Row
    yield from cursor


def check_open(conn: sqlite3.Connection, path: Path, migrations: tuple[str, ...]) -> int:
    """Pages, schema and rows of an open database (see the module docstring); raises
    DamagedDatabase (or NewerDatabase), or returns its schema version."""
    try:
        check_pages(conn, path)
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > len(migrations):
            raise NewerDatabase(
                f"{path}: schema version {version} is newer than this ipkeeper ({len(migrations)})"
            )
        check_schema(conn, path, version, migrations)
        if version:
            check_rows(conn, path)
    except sqlite3.DatabaseError as exc:
        raise DamagedDatabase(f"{path}: damaged: {exc}") from None
    return version


def check_file(path: Path, migrations: tuple[str, ...]) -> int:
    """Every check of the database at `path` on a read-only connection (SQLite may add
    empty `-wal` and `-shm` files; the database itself is never written); its schema
    version (0 for a new one). Raises DamagedDatabase or NewerDatabase."""
    check_header(path)
    if not path.exists() or path.stat().st_size == 0:
        return 0
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.DatabaseError as exc:
        raise DamagedDatabase(f"{path}: cannot be opened: {exc}") from None
    try:
        return check_open(conn, path, migrations)
    finally:
        conn.close()


def set_aside(path: Path) -> Path:
    """Rename a damaged database (and its WAL files) out of the way, kept for inspection;
    the new name of the database."""
    aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}")
    for suffix in WAL_SUFFIXES:
        each = path.with_name(path.name + suffix)
        if each.exists():
            each.rename(aside.with_name(aside.name + suffix))
    path.rename(aside)
    return aside
