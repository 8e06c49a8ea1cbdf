"""Opening this server's store at start-up: sound, or refused, or set aside.

The store must be known sound before the daemon decides anything or joins
the cluster: the database itself (store/soundness.py: SQLite's own checks,
the schema of its version, every row it decodes) and then every definition
as its kit will read it (an IP resource's address, prefix and interface, an
application's commands). On damage the daemon's policy (`damaged_database`
in `[server]`) says what happens:

- `refuse` (the default): raise, and the daemon exits with one line saying
  which file, what is wrong and what to do;
- `resync`, with at least one peer configured: the damaged file is renamed
  aside (`ipkeeper.db.damaged-<time>`, kept for inspection), the daemon
  starts with an empty database and learns every definition from its peers
  when it joins (each holds them all). What was this server's own and not
  replicated is lost: its states (learnt again from what is up on it) and
  its ping lists. With no peer to learn from, `resync` refuses too.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ipkeeper.kits.app.kit import ACTIONS
from ipkeeper.kits.ip.params import IPSpec
from ipkeeper.store.db import open_db
from ipkeeper.store.repo import InstanceRecord, Repo, ResourceRecord
from ipkeeper.store.soundness import DamagedDatabase, set_aside

REFUSE_HINT = (
    "; move it aside to start empty and learn the definitions from a peer, "
    'or set damaged_database = "resync" in [server]'
)


def _ip_problem(inst: InstanceRecord) -> str | None:
    try:
        spec = IPSpec.from_props(inst.props)
    except (KeyError, ValueError, TypeError) as exc:
        return f"its properties do not make an IP resource ({type(exc).__name__}: {exc})"
    top = 32 if spec.address.version == 4 else 128
    if not 1 <= spec.prefix <= top or not spec.interface:
        return f"prefix {spec.prefix} or interface {spec.interface!r} is not valid"
    return None


def _app_problem(inst: InstanceRecord) -> str | None:
    for action in ACTIONS:
        command = inst.props.get(action)
        if action != "recover" and not isinstance(command, str):
            return f"its {action} command is {command!r:.40}, not a command"
        if action == "recover" and command is not None and not isinstance(command, str):
            return f"its recover command is {command!r:.40}, not a command"
    timeout = inst.props.get("timeout", 60.0)
    if not isinstance(timeout, int | float) or isinstance(timeout, bool):
        return f"its timeout is {timeout!r:.40}, not a number of seconds"
    return None


CHECKS = {"ip": _ip_problem, "app": _app_problem}


def _resource_problem(rec: ResourceRecord, kinds: set[str]) -> str | None:
    if rec.kind not in kinds:
        return f"type {rec.kind!r} is not one of {', '.join(sorted(kinds))}"
    check = CHECKS.get(rec.kind)
    for inst in rec.instances:
        why = check(inst) if check is not None else None
        if why is not None:
            return f"instance on {inst.server} ({inst.tag}): {why}"
    return None


def definition_problems(repo: Repo, kinds: Iterable[str]) -> list[str]:
    """Every definition its kit could not act on, and every row naming a resource that
    does not exist; one line each."""
    known = set(kinds)
    found = []
    for rec in repo.resources():
        why = _resource_problem(rec, known)
        if why is not None:
            found.append(f"resource {rec.id}: {why}")
    ids = repo.resource_ids()
    for parent, child in repo.dependencies():
        if parent not in ids or child not in ids:
            found.append(f"dependency {parent} -> {child}: names a resource that does not exist")
    for rid in repo.local_states():
        if rid not in ids:
            found.append(f"state of {rid}: names a resource that does not exist")
    return found


def open_checked(path: Path, kinds: Iterable[str]) -> Repo:
    """The store at `path`, every check passed; DamagedDatabase (NewerDatabase) if not."""
    db = open_db(path)
    try:
        repo = Repo(db)
        problems = definition_problems(repo, kinds)
    except (ValueError, TypeError, KeyError) as exc:
        db.close()
        raise DamagedDatabase(f"{path}: a row does not decode: {exc}") from None
    if problems:
        db.close()
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise DamagedDatabase(f"{path}: {problems[0]}{more}")
    return repo


def open_sound(path: Path, kinds: Iterable[str], resync: bool) -> tuple[Repo, str | None]:
    """The store at `path` and, when it was damaged and `resync` allows it, the one line
    saying where the damaged file went (see the module docstring). Raises
    DamagedDatabase (with what to do) or NewerDatabase otherwise."""
    wanted = list(kinds)
    try:
        return open_checked(path, wanted), None
    except DamagedDatabase as exc:
        if not resync:
            raise DamagedDatabase(f"{exc}{REFUSE_HINT}") from None
        aside = set_aside(path)
        note = (
            f"{exc}; moved aside to {aside.name}: starting with an empty database, "
            "the definitions come from the peers"
        )
    return open_checked(path, wanted), note
