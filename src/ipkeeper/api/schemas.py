"""Request bodies of the HTTP API (pydantic validates them; errors name the field)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateIP(_Body):
    """POST /api/v1/resources/ip."""

    address: str = Field(description="IPv4/IPv6 address or host name (R1)")
    netmask: str = Field(description="dotted netmask or prefix length (R2)")
    interface: str | None = Field(
        default=None, description="default: the best valid interface (R3)"
    )
    tag: str | None = Field(default=None, description="default: ip-<address as entered> (R4)")
    switchback: Literal["intelligent", "automatic"] = "intelligent"
    priority: int = Field(default=1, description="this server's priority, 1 (highest) to 999")


class CreateApp(_Body):
    """POST /api/v1/resources/app."""

    tag: str
    restore: str
    remove: str
    check: str
    recover: str | None = None
    timeout: float = Field(default=60.0, ge=1, le=3600)
    switchback: Literal["intelligent", "automatic"] = "intelligent"
    priority: int = Field(default=1, description="this server's priority, 1 (highest) to 999")


class CreateGroup(_Body):
    """POST /api/v1/resources/group."""

    tag: str
    switchback: Literal["intelligent", "automatic"] = "intelligent"
    priority: int = Field(default=1, description="this server's priority, 1 (highest) to 999")


class Apply(_Body):
    """POST /api/v1/apply: a document of resources (the TOML of `ipkeeper apply`, as JSON)."""

    document: dict[str, Any]
    dry_run: bool = False


class InService(_Body):
    """POST /api/v1/resources/{tag}/in-service."""

    server: str | None = None


class Setting(_Body):
    """PUT /api/v1/resources/{tag}/settings/{key}."""

    value: str


class PingListChange(_Body):
    """POST /api/v1/resources/{tag}/pinglist."""

    verb: Literal["add", "remove", "clear"]
    addresses: list[str] = []


class Dependency(_Body):
    """POST /api/v1/dependencies."""

    parent: str
    child: str


class Extend(_Body):
    """POST /api/v1/resources/{tag}/extend (R18)."""

    target: str
    target_priority: int = 10
    template_priority: int | None = None
    interface: str | None = None
    target_tag: str | None = None
    switchback: Literal["intelligent", "automatic"] | None = None


class Unextend(_Body):
    """POST /api/v1/resources/{tag}/unextend (R19)."""

    server: str


class ErrorDetail(BaseModel):
    """What was refused and why."""

    field: str
    reason: str


class ErrorBody(BaseModel):
    """Every error answer: {"error": {"field": ..., "reason": ...}}."""

    error: ErrorDetail


ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in (
        (400, "refused: the field and the reason"),
        (401, "missing or wrong bearer token (API over TCP)"),
        (404, "no such resource, server or route"),
        (409, "conflicts with the current state"),
        (422, "malformed request"),
        (503, "a server that must take part is unreachable"),
    )
}
