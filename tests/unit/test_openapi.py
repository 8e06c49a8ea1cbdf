"""The OpenAPI document (R27) is valid and says, for every operation, what it is
called, what it does, what comes back and how it can fail; 405s name what a path takes."""

from __future__ import annotations

import asyncio
import re
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate

from ipkeeper.api.app import create_app

DOC = create_app(SimpleNamespace()).openapi()  # type: ignore[arg-type]
OPERATIONS = [
    (method, path, op)
    for path, item in DOC["paths"].items()
    for method, op in item.items()
    if method in ("get", "put", "post", "delete", "patch")
]
GENERATED = re.compile(r".*_(get|put|post|delete|patch)$")  # FastAPI's own ids end so


def test_the_document_is_valid_openapi() -> None:
    validate(DOC)
    assert DOC["openapi"].startswith("3.1")
    assert len(OPERATIONS) >= 19


@pytest.mark.parametrize(("method", "path", "op"), OPERATIONS, ids=lambda x: str(x)[:40])
def test_every_operation_has_a_name_a_summary_a_reply_schema_and_its_errors(
    method: str, path: str, op: dict[str, Any]
) -> None:
    assert re.fullmatch(r"[a-z]+[A-Za-z]+", op["operationId"]) and not GENERATED.match(
        op["operationId"]
    )
    assert op["summary"][0].isupper() and len(op["summary"].split()) >= 2
    assert op["description"]
    success = [code for code in op["responses"] if code.startswith("2")]
    assert len(success) == 1
    content = op["responses"][success[0]]["content"]
    schemas = [media["schema"] for media in content.values()]
    assert schemas and all(s.get("$ref") or s.get("type") for s in schemas)
    if "$ref" in schemas[0]:
        name = schemas[0]["$ref"].rsplit("/", 1)[1]
        model = DOC["components"]["schemas"][name]
        assert model["properties"] and model.get("examples"), name
    # What comes before every operation (strict input, the token, the failure count) is
    # documented on each; 403 where a viewer token is refused.
    assert {"400", "401", "413", "429"} <= set(op["responses"])
    assert ("403" in op["responses"]) == (op["x-ipkeeper-role"] == "admin")
    for code, reply in op["responses"].items():
        if not code.startswith("2"):
            ref = reply["content"]["application/json"]["schema"]["$ref"]
            assert ref.endswith("/ErrorBody")
    # Whatever the schema refuses is a 400 (api/app.py), never FastAPI's 422.
    assert "422" not in op["responses"]
    if op.get("parameters") or op.get("requestBody"):
        assert "schema does not allow" in op["responses"]["400"]["description"]


def test_operation_ids_are_unique() -> None:
    ids = [op["operationId"] for _, _, op in OPERATIONS]
    assert len(ids) == len(set(ids))


def test_a_malformed_request_is_400_naming_the_field() -> None:
    app = create_app(SimpleNamespace())  # type: ignore[arg-type]

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.post("/api/v1/resources/web/extend", json={"target": 5})

    answer = asyncio.run(go())
    assert answer.status_code == 400
    assert answer.json()["error"]["field"] == "target"


def test_a_method_a_path_does_not_take_is_405_with_every_method_it_does() -> None:
    app = create_app(SimpleNamespace())  # type: ignore[arg-type]

    async def go(method: str, path: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.request(method, path)

    answer = asyncio.run(go("PUT", "/api/v1/resources/web"))
    assert answer.status_code == 405
    assert answer.headers["allow"] == "DELETE, GET"
    assert answer.json()["error"]["field"] == "request"
    answer = asyncio.run(go("GET", "/api/v1/resources/web/pinglist/x"))
    assert answer.status_code == 404
    answer = asyncio.run(go("DELETE", "/api/v1/resources/web/pinglist"))
    assert (answer.status_code, answer.headers["allow"]) == (405, "GET, POST")
    # A concrete path before the template that matches it too, as OpenAPI reads them.
    answer = asyncio.run(go("PUT", "/api/v1/resources/ip"))
    assert (answer.status_code, answer.headers["allow"]) == (405, "POST")


def test_a_reply_is_what_the_engine_said_checked_against_its_model() -> None:
    from fastapi import APIRouter, FastAPI

    from ipkeeper.api.deps import ReplyRoute
    from ipkeeper.api.replies import InServiceResult

    router = APIRouter(route_class=ReplyRoute)
    said: dict[str, Any] = {"tag": "web", "server": "s2", "state": "ISP", "moved_from": []}

    @router.get("/good", response_model=InServiceResult)
    async def good() -> dict[str, Any]:
        return {**said, "added_later": 1}

    @router.get("/bad", response_model=InServiceResult)
    async def bad() -> dict[str, Any]:
        return {**said, "state": "SOMEWHERE"}

    app = FastAPI()
    app.include_router(router)

    async def go(path: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get(path)

    assert asyncio.run(go("/good")).json() == {**said, "added_later": 1}  # no defaults added
    assert asyncio.run(go("/bad")).status_code == 500  # a reply off its schema never leaves
