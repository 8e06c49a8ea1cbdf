"""Request bodies and error answers of the HTTP API (pydantic validates them; errors
name the field). What successful requests answer is in replies.py."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _example(**example: Any) -> ConfigDict:
    return ConfigDict(extra="forbid", json_schema_extra={"examples": [example]})


class CreateIP(_Body):
    """POST /api/v1/resources/ip."""

    model_config = _example(address="198.18.0.50", netmask="24")

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

    model_config = _example(
        tag="web",
        restore="/opt/web/bin/web start",
        remove="/opt/web/bin/web stop",
        check="/opt/web/bin/web check",
    )

    tag: str
    restore: str
    remove: str
    check: str
    recover: str | None = None
    timeout: float = Field(default=60.0, ge=1, le=3600)
    switchback: Literal["intelligent", "automatic"] = "intelligent"
    priority: int = Field(default=1, description="this server's priority, 1 (highest) to 999")


class InService(_Body):
    """POST /api/v1/resources/{tag}/in-service."""

    model_config = _example(server="s2")

    server: str | None = Field(default=None, description="default: the server asked")


class Setting(_Body):
    """PUT /api/v1/resources/{tag}/settings/{key}."""

    model_config = _example(value="yes")

    value: str


class PingListChange(_Body):
    """POST /api/v1/resources/{tag}/pinglist."""

    model_config = _example(verb="add", addresses=["198.18.0.1"])

    verb: Literal["add", "remove", "clear"]
    addresses: list[str] = []


class Dependency(_Body):
    """POST /api/v1/dependencies."""

    model_config = _example(parent="web", child="ip-198.18.0.50")

    parent: str
    child: str


class Extend(_Body):
    """POST /api/v1/resources/{tag}/extend (R18)."""

    model_config = _example(target="s2", target_priority=10)

    target: str
    target_priority: int = 10
    template_priority: int | None = None
    interface: str | None = None
    target_tag: str | None = None
    switchback: Literal["intelligent", "automatic"] | None = None


class Unextend(_Body):
    """POST /api/v1/resources/{tag}/unextend (R19)."""

    model_config = _example(server="s2")

    server: str


class ErrorDetail(BaseModel):
    """What was refused and why."""

    field: str
    reason: str


class ErrorBody(BaseModel):
    """Every error answer: {"error": {"field": ..., "reason": ...}}."""

    error: ErrorDetail


ERROR_TEXTS = {
    400: "refused: the field and the reason",
    401: "missing or wrong bearer token (API over TCP)",
    404: "no such resource, server or route",
    409: "conflicts with the current state",
    422: "malformed request: the field and the reason",
    503: "a server that must take part is unreachable, still starting, or in a minority",
    504: "a server that must take part did not answer in time",
}

# What any operation that asks other servers may also answer.
PEERS = (503, 504)


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The error responses of one operation (401 always: the API over TCP needs a token)."""
    return {
        code: {"model": ErrorBody, "description": ERROR_TEXTS[code]}
        for code in sorted({401, *codes})
    }


def json_errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The same for an operation whose success is not JSON (its errors still are)."""
    ref = {"$ref": "#/components/schemas/ErrorBody"}
    return {
        code: {"description": ERROR_TEXTS[code], "content": {"application/json": {"schema": ref}}}
        for code in sorted({401, *codes})
    }
