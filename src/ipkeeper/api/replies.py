"""What the HTTP API answers (R27): a pydantic model for every 2xx reply, so the
OpenAPI document says what comes back, and FastAPI checks it before it leaves.

Every model allows fields beyond those declared: the status object may grow
(SPEC.md section 5), and a peer of a newer version may say more; clients
must ignore what they do not know.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

StateName = Literal["ISP", "ISU", "OSU", "OSF"]


class _Reply(BaseModel):
    model_config = ConfigDict(extra="allow")


def _example(**example: Any) -> ConfigDict:
    return ConfigDict(extra="allow", json_schema_extra={"examples": [example]})


# -- status -----------------------------------------------------------------------


class CommPath(_Reply):
    """One communication path to a peer (R25)."""

    peer: str
    local: str = Field(description="this server's address")
    remote: str = Field(description="the peer's address")
    state: Literal["up", "down"]
    since: float | None = Field(default=None, description="Unix time of the last change")
    rtt_ms: float | None = Field(default=None, description="heartbeat round trip while up")
    reason: str | None = Field(default=None, description="why it is down")


class ServerInfo(_Reply):
    """A server of the cluster as this one sees it."""

    name: str
    alive: bool
    local: bool = Field(description="true for the server that answered")
    witness: bool = Field(description="a vote that holds no resources")
    comm_paths: list[CommPath]
    version: str | None = Field(
        default=None,
        description="the ipkeeper version it runs, from its handshake (None: none yet; "
        '"unknown": its handshake named none)',
    )
    version_mismatch: bool = Field(
        default=False, description="it runs another version than the server that answered"
    )


class Quorum(_Reply):
    """Quorum mode and votes (R32)."""

    mode: str
    votes: int
    of: int
    has_quorum: bool
    note: str = ""


class HierarchyGuard(_Reply):
    """What keeps one hierarchy from running on two servers at once if the comm paths
    are cut (engine/guard.py)."""

    tag: str = Field(description="the hierarchy's anchor (its first root resource)")
    resources: int = Field(description="how many resources it has")
    servers: list[str] = Field(description="the servers it is extended to")
    guarded: bool
    guard: str = Field(
        description='"unique-address check", "quorum (majority)", "not needed: on one server '
        'only", "not needed: it runs nothing", or "nothing: may run on two servers if the comm '
        'paths are cut (WHY)"'
    )
    unguarded: list[str] = Field(description="its resources that may run on two servers")


class LastCheck(_Reply):
    """The last health check of an instance in service here (R9)."""

    ok: bool
    reason: str
    at: float


class InstanceStatus(_Reply):
    """One instance on one server: another server's is the last it reported."""

    tag: str
    priority: int
    state: StateName | None = None
    reason: str | None = Field(default=None, description="why it is in this state")
    since: float | None = Field(default=None, description="Unix time it entered this state")
    pending: str | None = Field(default=None, description="action in flight")
    busy: str | None = None
    stale: bool | None = Field(default=None, description="the server is not alive now")
    last_check: LastCheck | None = None


class ResourceStatus(_Reply):
    """A resource with its dependencies and every server's instance."""

    tag: str
    id: str
    type: str
    switchback: Literal["intelligent", "automatic"]
    parents: list[str]
    children: list[str]
    servers: dict[str, InstanceStatus]


class StoreStatus(_Reply):
    """Whether this server's database takes writes (a full disk is an alarm, not an outage)."""

    writable: bool
    path: str
    write_failures: int = Field(description="writes the disk refused since the daemon started")
    unsaved_states: int = Field(description="states and settings kept in memory for the disk")
    waiting_events: int = Field(description="events kept in memory for the disk")
    since: float | None = Field(default=None, description="Unix time of the first refusal")
    reason: str | None = Field(default=None, description="what the disk said")


class Unprotected(_Reply):
    """A resource kept in service here unprotected: nobody answers on its subnet from any
    server (NO_RESPONDER=keep; issue 11, item 8)."""

    tag: str
    reason: str


class Status(_Reply):
    """GET /api/v1/status, the same object as `ipkeeper status --json`."""

    model_config = _example(
        server="s1",
        servers=[
            {"name": "s1", "alive": True, "local": True, "witness": False, "comm_paths": []},
            {
                "name": "s2",
                "alive": True,
                "local": False,
                "witness": False,
                "comm_paths": [
                    {
                        "peer": "s2",
                        "local": "198.18.0.11",
                        "remote": "198.18.0.12",
                        "state": "up",
                        "since": 1767225600.0,
                        "rtt_ms": 0.21,
                        "reason": None,
                    }
                ],
            },
        ],
        quorum={"mode": "none", "votes": 2, "of": 2, "has_quorum": True, "note": ""},
        resources=[
            {
                "tag": "ip-198.18.0.50",
                "id": "5d1c2f0e9a7b4c3d8e6f1a2b3c4d5e6f",
                "type": "ip",
                "switchback": "intelligent",
                "parents": [],
                "children": [],
                "servers": {
                    "s1": {
                        "tag": "ip-198.18.0.50",
                        "priority": 1,
                        "state": "ISP",
                        "reason": "created",
                        "since": 1767225600.0,
                    },
                    "s2": {"tag": "ip-198.18.0.50", "priority": 10, "state": "OSU", "reason": ""},
                },
            }
        ],
        store={
            "writable": True,
            "path": "/var/lib/ipkeeper/ipkeeper.db",
            "write_failures": 0,
            "unsaved_states": 0,
            "waiting_events": 0,
        },
    )

    server: str = Field(description="the server that answered")
    servers: list[ServerInfo]
    quorum: Quorum
    resources: list[ResourceStatus]
    hierarchies: list[HierarchyGuard] = Field(
        default=[], description="every hierarchy with what guards it against running twice"
    )
    store: StoreStatus | None = Field(
        default=None, description="whether this server's database takes writes"
    )
    unprotected: list[Unprotected] = Field(
        default_factory=list,
        description="resources kept in service here although nobody answers on their subnet",
    )


class Tunable(_Reply):
    """A tunable's value in force and where it came from (R11)."""

    name: str
    value: bool | int | float | str
    source: str = Field(description='"default", "file", or "default (invalid ...)"')


class Tunables(_Reply):
    """GET /api/v1/tunables."""

    model_config = _example(
        file="/etc/default/ipkeeper",
        tunables=[{"name": "CHECK_INTERVAL", "value": 1.0, "source": "default"}],
    )

    file: str
    tunables: list[Tunable]


class InterfaceChoice(_Reply):
    """One valid interface, with why (R3)."""

    name: str
    reason: str


class Interfaces(_Reply):
    """GET /api/v1/interfaces: valid interfaces for a VIP on a server, best first."""

    model_config = _example(
        server="s1",
        address="198.18.0.50",
        subnet="198.18.0.0/24",
        interfaces=[{"name": "eth0", "reason": "198.18.0.11/24 is on it"}],
    )

    server: str
    address: str
    subnet: str
    interfaces: list[InterfaceChoice]


# -- resources ----------------------------------------------------------------------


class Created(_Reply):
    """A resource created and brought in service here (R17)."""

    model_config = _example(
        tag="ip-198.18.0.50",
        type="ip",
        state="ISP",
        warnings=["not protected until extended to another server"],
    )

    tag: str
    type: str
    state: StateName | None
    warnings: list[str] = []


class Applied(_Reply):
    """What applying a document changed (or, with dry_run, would change)."""

    model_config = _example(
        dry_run=False,
        create=["ip-198.18.0.100", "vips"],
        extend={"s2": ["ip-198.18.0.100", "vips"]},
        depend=[["vips", "ip-198.18.0.100"]],
        switchback=[],
        unchanged=0,
        changes=5,
    )

    dry_run: bool
    create: list[str] = Field(description="tags created")
    extend: dict[str, list[str]] = Field(description="tags extended, by target server")
    depend: list[list[str]] = Field(description="dependencies added, [parent, child]")
    switchback: list[list[str]] = Field(description="switchback changed, [tag, new value]")
    unchanged: int = Field(description="entries already as the document says")
    changes: int
    warnings: list[str] = []


class Equivalent(_Reply):
    """One server's instance of a resource, with its priority."""

    server: str
    tag: str
    priority: int


class Properties(_Reply):
    """Every property of a resource on one server (R12); IP and app fields by type."""

    model_config = _example(
        tag="ip-198.18.0.50",
        type="ip",
        server="s1",
        priority=1,
        state="ISP",
        reason="created",
        since=1767225600.0,
        switchback="intelligent",
        parents=[],
        children=[],
        equivalents=[
            {"server": "s1", "tag": "ip-198.18.0.50", "priority": 1},
            {"server": "s2", "tag": "ip-198.18.0.50", "priority": 10},
        ],
        virtual_ip="198.18.0.50",
        netmask="255.255.255.0",
        subnet="198.18.0.0/24",
        prefix_bits=24,
        interface="eth0",
        source_address="no",
        restore_recover="enable",
        ping_list=["198.18.0.1"],
    )

    tag: str
    type: str
    server: str
    priority: int
    state: StateName | None = None
    reason: str | None = None
    since: float | None = None
    pending: str | None = None
    busy: str | None = None
    stale: bool | None = None
    last_check: LastCheck | None = None
    switchback: Literal["intelligent", "automatic"]
    parents: list[str]
    children: list[str]
    equivalents: list[Equivalent]
    warnings: list[str] = []
    virtual_ip: str | None = Field(default=None, description="IP resources")
    netmask: str | None = None
    subnet: str | None = None
    prefix_bits: int | None = None
    interface: str | None = None
    source_address: Literal["yes", "no"] | None = None
    source_address_effective: str | None = None
    restore_recover: Literal["enable", "disable"] | None = None
    broadcast_ping: Literal["yes", "no"] | None = Field(
        default=None, description="no: never a broadcast ping for it (its own NOBCASTPING)"
    )
    ping_list: list[str] | None = Field(default=None, description="this server's, for the subnet")
    restore: str | None = Field(default=None, description="application resources")
    remove: str | None = None
    check: str | None = None
    recover: str | None = None
    timeout: float | None = None


class Deleted(_Reply):
    """DELETE /api/v1/resources/{tag}: what was deleted everywhere (R20)."""

    model_config = _example(deleted=["ip-198.18.0.50", "web"])

    deleted: list[str]


class SettingChanged(_Reply):
    """A setting changed (R14, R15, R23), with notes on when it takes effect."""

    model_config = _example(
        tag="ip-198.18.0.50",
        setting="source-address",
        value="yes",
        notes=["takes effect at the next bring-up"],
    )

    tag: str
    setting: str
    value: str
    notes: list[str] = []


class PingList(_Reply):
    """A server's ping list for a subnet (R13)."""

    model_config = _example(
        tag="ip-198.18.0.50",
        server="s1",
        subnet="198.18.0.0/24",
        addresses=["198.18.0.1"],
        warnings=[],
    )

    tag: str
    server: str
    subnet: str
    addresses: list[str]
    warnings: list[str] = []


# -- hierarchies -------------------------------------------------------------------------


class InServiceResult(_Reply):
    """The hierarchy in service on a server (R24)."""

    model_config = _example(tag="web", server="s2", state="ISP", moved_from=["s1"], notes=[])

    tag: str
    server: str
    state: StateName
    moved_from: list[str] = Field(description="servers it was taken down on first")
    notes: list[str] = []


class OutOfServiceResult(_Reply):
    """The hierarchy taken out of service (R24)."""

    model_config = _example(tag="web", state="OSU", taken_down_on=["s1"])

    tag: str
    state: StateName | None
    taken_down_on: list[str]


class DependencyCreated(_Reply):
    """PARENT now depends on CHILD (R21)."""

    model_config = _example(parent="web", child="ip-198.18.0.50")

    parent: str
    child: str
    warnings: list[str] = []


class DependencyRemoved(_Reply):
    """PARENT no longer depends on CHILD (R21)."""

    model_config = _example(parent="web", child="ip-198.18.0.50", removed=True)

    parent: str
    child: str
    removed: bool
    warnings: list[str] = []


class ExtendedResource(_Reply):
    """One resource of an extend: its tag and, for an IP resource, where it goes (R18)."""

    tag: str = Field(description="on the template")
    target_tag: str
    type: str
    address: str | None = Field(default=None, description="IP resources, read-only")
    netmask: str | None = Field(default=None, description="IP resources, read-only")
    template_interface: str | None = None
    interface: str | None = Field(default=None, description="on the target")
    choices: list[InterfaceChoice] = Field(
        default=[], description="valid interfaces on the target, best first (R3)"
    )
    warnings: list[str] = []


class Extended(_Reply):
    """The hierarchy extended to a target server (R18), or with dry_run what would be."""

    model_config = _example(
        tag="web",
        target="s2",
        template="s1",
        extended=["ip-198.18.0.50", "web"],
        target_priority=10,
        dry_run=False,
        resources=[
            {
                "tag": "ip-198.18.0.50",
                "target_tag": "ip-198.18.0.50",
                "type": "ip",
                "address": "198.18.0.50",
                "netmask": "255.255.255.0",
                "template_interface": "eth0",
                "interface": "eth0",
                "choices": [{"name": "eth0", "reason": "already has an address in 198.18.0.0/24"}],
                "warnings": [],
            },
            {"tag": "web", "target_tag": "web", "type": "app"},
        ],
        warnings=[],
    )

    tag: str
    target: str
    template: str | None = Field(default=None, description="the server it was extended from")
    extended: list[str] = Field(description="tags on the target, children first")
    target_priority: int
    dry_run: bool = False
    resources: list[ExtendedResource] = []
    warnings: list[str] = []


class Unextended(_Reply):
    """The hierarchy removed from one server (R19)."""

    model_config = _example(tag="web", server="s2", unextended=["ip-198.18.0.50", "web"])

    tag: str
    server: str
    unextended: list[str]


# -- events -----------------------------------------------------------------------------


class EventItem(_Reply):
    """One event (R29): `id` counts per server."""

    id: int
    ts: float = Field(description="Unix time on the server that logged it")
    server: str
    tag: str | None
    kind: str
    message: str
    details: dict[str, Any]


_EVENT = {
    "id": 42,
    "ts": 1767225600.0,
    "server": "s2",
    "tag": "ip-198.18.0.50",
    "kind": "failover",
    "message": "s1 died holding it; taking it over (priority 10)",
    "details": {},
}


class Events(_Reply):
    """GET /api/v1/events: this server's events, oldest first."""

    model_config = _example(events=[_EVENT])

    events: list[EventItem]


class Unreachable(_Reply):
    """A server whose events could not be had, and why."""

    server: str
    reason: str


class History(_Reply):
    """GET /api/v1/history: the events of every server asked, merged by time."""

    model_config = _example(events=[_EVENT], servers=["s1", "s2"], unreachable=[])

    events: list[EventItem]
    servers: list[str] = Field(description="servers that answered")
    unreachable: list[Unreachable]
