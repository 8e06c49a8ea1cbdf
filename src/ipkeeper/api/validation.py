"""One-line reasons for requests the schema refuses, in the words the engine uses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def field_of(error: Mapping[str, Any]) -> str:
    """The field a pydantic error is about (`target_priority`, `after`), or "request"."""
    loc = [
        str(p)
        for p in error.get("loc", ())
        if p not in ("body", "query", "path") and not isinstance(p, int)
    ]
    return ".".join(loc) or "request"


def reason_of(error: Mapping[str, Any]) -> str:
    """Why the value is refused, naming the bound it crossed."""
    kind = error.get("type", "")
    ctx = error.get("ctx") or {}
    given = error.get("input")
    if kind in ("less_than_equal", "less_than"):
        return f"{given} is above the maximum {ctx.get('le', ctx.get('lt'))}"
    if kind in ("greater_than_equal", "greater_than"):
        return f"{given} is below the minimum {ctx.get('ge', ctx.get('gt'))}"
    if kind == "string_too_short":
        return "must not be empty" if ctx.get("min_length") == 1 else str(error.get("msg"))
    if kind == "string_too_long":
        return f"is longer than {ctx.get('max_length')} characters"
    if kind == "too_long":
        return f"has more than {ctx.get('max_length')} items"
    if kind == "literal_error":
        return f"{given!r} must be one of {ctx.get('expected')}"
    return str(error.get("msg", "invalid"))


def drop_generated_422(schema: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document without FastAPI's own 422 answers and their models: this API
    answers 400 for whatever the schema refuses (api/app.py), and every operation says so
    (api/schemas.py's errors)."""
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            operation.get("responses", {}).pop("422", None)
    models = schema.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        models.pop(name, None)
    return schema
