"""What an extend will do, resource by resource (R18), and the answers it was given.

The guide's extend wizard asks, for every resource of the hierarchy, the
target interface and tag, with the IP and netmask shown read-only. Here the
answers come per resource (the root's may also come as the plain
`interface` and `target_tag`), are checked against the hierarchy, and the
report lists every resource with what the target chose, the valid choices
and the warnings: the same report for a dry run (shown before anything is
done) and for the extend itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ipkeeper.engine.core import Engine
from ipkeeper.engine.errors import OpError
from ipkeeper.kits.ip.params import IPSpec, ParamError, check_tag, dotted_netmask


@dataclass(frozen=True)
class Answer:
    """What the administrator chose for one resource on the target (None: the default)."""

    interface: str | None = None
    target_tag: str | None = None


def answers(
    engine: Engine,
    root: str,
    interface: str | None,
    target_tag: str | None,
    resources: list[dict[str, Any]],
) -> dict[str, Answer]:
    """Each member's answer by resource id; refuses an answer for a tag outside the
    hierarchy, twice for one resource, or an interface for a resource that has none."""
    members = {root} | engine.graph().descendants(root)
    by_tag = {engine.tag(rid): rid for rid in members}
    found = {root: Answer(interface, target_tag)}
    given: set[str] = set()
    for entry in resources:
        tag = str(entry.get("tag"))
        rid = by_tag.get(tag)
        if rid is None:
            raise OpError(
                "resources",
                f"{tag} is not in the hierarchy of {engine.tag(root)} "
                f"(it has {', '.join(sorted(by_tag))})",
            )
        if rid in given:
            raise OpError("resources", f"{tag} is answered twice")
        given.add(rid)
        rec = engine.repo.resource(rid)
        wanted = entry.get("interface")
        if wanted and rec is not None and rec.kind != "ip":
            raise OpError("resources", f"{tag} is {rec.kind}: only IP resources have an interface")
        if entry.get("target_tag"):
            try:
                check_tag(str(entry["target_tag"]))
            except ParamError as exc:
                raise OpError("resources", f"{tag}: target tag {exc.reason}") from None
        before = found.get(rid, Answer())
        found[rid] = Answer(
            wanted or before.interface, entry.get("target_tag") or before.target_tag
        )
    return found


def _resource(
    engine: Engine, item: dict[str, Any], checked: dict[str, Any], target: str
) -> dict[str, Any]:
    rec = engine.repo.resource(item["id"])
    assert rec is not None
    entry: dict[str, Any] = {
        "tag": engine.tag(item["id"]),
        "target_tag": item["tag"],
        "type": item["kind"],
        "choices": checked.get("choices", []),
        "warnings": list(checked.get("warnings", [])),
    }
    if item["kind"] == "ip":
        spec = IPSpec.from_props(checked["props"])
        template = item.get("template_interface")
        entry.update(
            address=str(spec.address),
            netmask=dotted_netmask(spec.cidr),
            template_interface=template,
            interface=spec.interface,
        )
        if template and spec.interface != template:
            entry["warnings"].append(
                f"on {target} it goes on {spec.interface}, on {engine.server} (the template) "
                f"on {template}: its interface differs between servers"
            )
    return entry


def report(
    engine: Engine,
    tag: str,
    target: str,
    target_priority: int,
    items: list[dict[str, Any]],
    checked: dict[str, dict[str, Any]],
    dry_run: bool,
) -> dict[str, Any]:
    """The extend's reply: every resource extended (or, in a dry run, to be), children
    first, with the target's interface, the choices and the warnings."""
    resources = [_resource(engine, item, checked[item["id"]], target) for item in items]
    return {
        "tag": tag,
        "target": target,
        "template": engine.server,
        "target_priority": target_priority,
        "dry_run": dry_run,
        "extended": [r["target_tag"] for r in resources],
        "resources": resources,
        "warnings": [f"{r['tag']}: {w}" for r in resources for w in r["warnings"]],
    }


def summary(resources: list[dict[str, Any]]) -> str:
    """`ip-a (eth1), ip-b (eth0), web`: what an event says was extended."""
    return ", ".join(
        f"{r['target_tag']} ({r['interface']})" if r.get("interface") else r["target_tag"]
        for r in resources
    )
