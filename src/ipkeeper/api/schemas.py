"""Request bodies and error answers of the HTTP API (pydantic validates them; errors
name the field). What successful requests answer is in replies.py.

Every integer and string is bounded here, so what reaches the engine and the
store is in range; the engine checks meaning (an address in use, an interface
that is not there) and says so with a 400 or 409. Whatever the schema refuses
is answered 400, like the engine's own refusals.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

PRIORITY_HELP = "1 (highest) to 999"
TAG_HELP = "1-63 letters, digits or . _ : @ -, starting with a letter or digit"
# The largest id SQLite can store (a signed 64-bit integer).
MAX_ID = 2**63 - 1

Tag = Annotated[str, Field(min_length=1, max_length=63, description=TAG_HELP)]
ServerName = Annotated[str, Field(min_length=1, max_length=63, description="a server's name")]
Command = Annotated[
    str,
    Field(
        min_length=1,
        max_length=4096,
        description="program and arguments (split as a shell would, never run by a shell)",
    ),
]
Priority = Annotated[int, Field(ge=1, le=999, description=PRIORITY_HELP)]
Address = Annotated[str, Field(min_length=1, max_length=253)]
Netmask = Annotated[
    str, Field(min_length=1, max_length=15, description="dotted netmask or prefix length (R2)")
]
Interface = Annotated[str, Field(min_length=1, max_length=15)]
PingAddress = Annotated[str, Field(min_length=1, max_length=64)]
SERVER_HELP = "the server to create it on (in service there); default: the server asked"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _example(**example: Any) -> ConfigDict:
    return ConfigDict(extra="forbid", json_schema_extra={"examples": [example]})


class CreateIP(_Body):
    """POST /api/v1/resources/ip."""

    model_config = _example(address="198.18.0.50", netmask="24")

    address: Address = Field(description="IPv4/IPv6 address or host name (R1)")
    netmask: Netmask
    interface: Interface | None = Field(
        default=None, description="default: the best valid interface (R3)"
    )
    tag: Tag | None = Field(default=None, description="default: ip-<address as entered> (R4)")
    switchback: Literal["intelligent", "automatic"] = "intelligent"
    priority: Priority = Field(default=1, description="its server's priority, 1 (highest) to 999")
    server: ServerName | None = Field(default=None, description=SERVER_HELP)
    pinglist: list[PingAddress] = Field(
        default=[],
        max_length=64,
        description="addresses to ping instead of the broadcast, set for the subnet on that "
        "server before the bring-up (R13)",
    )
    broadcast_ping: bool = Field(
        default=True, description="false: no broadcast ping for it (its own NOBCASTPING, R9)"
    )


class CreateApp(_Body):
    """POST /api/v1/resources/app."""

    model_config = _example(
        tag="web",
        restore="/opt/web/bin/web start",
        remove="/opt/web/bin/web stop",
        check="/opt/web/bin/web check",
    )

    tag: Tag
    restore: Command
    remove: Command
    check: Command
    recover: Command | None = None
    timeout: float = Field(default=60.0, ge=1, le=3600)
    switchback: Literal["intelligent", "automatic"] = "intelligent"
    priority: Priority = Field(default=1, description="its server's priority, 1 (highest) to 999")
    server: ServerName | None = Field(default=None, description=SERVER_HELP)


class CreateGroup(_Body):
    """POST /api/v1/resources/group."""

    model_config = _example(tag="vips")

    tag: Tag
    switchback: Literal["intelligent", "automatic"] = "intelligent"
    priority: Priority = Field(default=1, description="its server's priority, 1 (highest) to 999")
    server: ServerName | None = Field(default=None, description=SERVER_HELP)


class Apply(_Body):
    """POST /api/v1/apply: a document of resources (the TOML of `ipkeeper apply`, as JSON)."""

    model_config = _example(
        document={
            "defaults": {"netmask": "24", "interface": "eth0", "servers": {"s1": 1, "s2": 10}},
            "ip": [{"range": "198.18.0.100-198.18.0.109"}],
            "group": [{"tag": "vips", "children": ["ip-198.18.0.1*"]}],
        },
        dry_run=True,
    )

    document: dict[str, Any] = Field(description="the document (see `ipkeeper apply --help`)")
    dry_run: bool = Field(default=False, description="say what would change, change nothing")


class InService(_Body):
    """POST /api/v1/resources/{tag}/in-service."""

    model_config = _example(server="s2")

    server: ServerName | None = Field(default=None, description="default: the server asked")


class Setting(_Body):
    """PUT /api/v1/resources/{tag}/settings/{key}."""

    model_config = _example(value="yes")

    value: str = Field(min_length=1, max_length=32)


class PingListChange(_Body):
    """POST /api/v1/resources/{tag}/pinglist."""

    model_config = _example(verb="add", addresses=["198.18.0.1"])

    verb: Literal["add", "remove", "clear"]
    addresses: list[PingAddress] = Field(default=[], max_length=64)


class Dependency(_Body):
    """POST /api/v1/dependencies."""

    model_config = _example(parent="web", child="ip-198.18.0.50")

    parent: Tag
    child: Tag


class ExtendAnswer(_Body):
    """One resource of the hierarchy on the target: its interface and tag (R18)."""

    tag: Tag = Field(description="the resource, by its tag on the template")
    interface: Interface | None = Field(
        default=None,
        description="IP resources: the interface on the target (valid there by R3); default: "
        "the template's interface name where valid there, else the best valid one",
    )
    target_tag: Tag | None = Field(default=None, description="default: the same tag")


class Extend(_Body):
    """POST /api/v1/resources/{tag}/extend (R18)."""

    model_config = _example(
        target="s2",
        target_priority=10,
        resources=[{"tag": "ip-198.18.1.50", "interface": "eth1"}],
        dry_run=True,
    )

    target: ServerName
    target_priority: Priority = 10
    template_priority: Priority | None = None
    interface: Interface | None = Field(default=None, description="the root's, if an IP resource")
    target_tag: Tag | None = Field(default=None, description="the root's tag on the target")
    switchback: Literal["intelligent", "automatic"] | None = None
    resources: list[ExtendAnswer] = Field(
        default=[], max_length=1000, description="answers for any resource of the hierarchy"
    )
    dry_run: bool = Field(
        default=False,
        description="say what would be done, resource by resource (checked by the target), "
        "and do nothing",
    )


class Unextend(_Body):
    """POST /api/v1/resources/{tag}/unextend (R19)."""

    model_config = _example(server="s2")

    server: ServerName


class ErrorDetail(BaseModel):
    """What was refused and why."""

    field: str
    reason: str


class ErrorBody(BaseModel):
    """Every error answer: {"error": {"field": ..., "reason": ...}}."""

    error: ErrorDetail


ERROR_TEXTS = {
    400: "refused: the field and the reason (a value the schema does not allow, "
    "malformed or duplicate-key JSON, a repeated header, or the engine's refusal)",
    401: "missing or wrong bearer token (API over TCP)",
    403: "a valid token without the role this operation needs (API over TCP)",
    404: "no such resource, server or route",
    409: "conflicts with the current state",
    413: "request body larger than 64 KiB",
    429: "too many failed authentications from this source (API over TCP)",
    503: "a server that must take part is unreachable, still starting, or in a minority; "
    "or its disk refuses writes (field `store`)",
    504: "a server that must take part did not answer in time",
}

# What any operation may answer: the strict input rules and the token checks come
# before the operation (api/strict.py, api/auth.py). 403 is added to the operations
# that need the admin role (api/auth.py's document_roles).
ALWAYS = (400, 401, 413, 429)
# What any operation that asks other servers may also answer.
PEERS = (503, 504)


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The error responses of one operation: its own `codes` and those of ALWAYS."""
    return {
        code: {"model": ErrorBody, "description": ERROR_TEXTS[code]}
        for code in sorted({*ALWAYS, *codes})
    }


def json_errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The same for an operation whose success is not JSON (its errors still are)."""
    ref = {"$ref": "#/components/schemas/ErrorBody"}
    return {
        code: {"description": ERROR_TEXTS[code], "content": {"application/json": {"schema": ref}}}
        for code in sorted({*ALWAYS, *codes})
    }
