"""Strict input and security headers on the API, in-process: body size, JSON nesting,
duplicate keys and headers, bounded integers, 405 with Allow, the headers of every answer."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import httpx
import pytest

from ipkeeper.api.app import create_app
from ipkeeper.api.headers import CSP
from ipkeeper.api.strict import MAX_BODY, MAX_DEPTH, InputError, StrictInput, check_json, nesting
from ipkeeper.api.surface import Surface
from ipkeeper.config.daemon import ApiSection


def call(
    method: str,
    path: str,
    content: bytes | None = None,
    headers: list[tuple[str, str]] | None = None,
) -> httpx.Response:
    app = create_app(SimpleNamespace())  # type: ignore[arg-type]
    served = Surface(ApiSection()).local(app)

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=served, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            return await http.request(method, path, content=content, headers=headers or [])

    return asyncio.run(go())


def post_json(text: str) -> httpx.Response:
    return call(
        "POST",
        "/api/v1/resources/ip",
        text.encode(),
        [("Content-Type", "application/json")],
    )


def test_duplicate_json_keys_are_refused() -> None:
    reply = post_json('{"address": "198.18.0.50", "netmask": "24", "address": "198.18.0.51"}')
    assert reply.status_code == 400
    assert reply.json() == {"error": {"field": "body", "reason": "duplicate key 'address'"}}
    with pytest.raises(InputError, match="duplicate key 'b'"):
        check_json(b'{"a": [{"b": 1, "b": 2}]}')


def test_deep_nesting_is_refused_before_parsing() -> None:
    deep = "[" * 5000 + "]" * 5000  # would be parsed recursively: refused by a scan first
    reply = post_json(deep)
    assert reply.status_code == 400
    assert reply.json()["error"]["reason"] == f"nested deeper than {MAX_DEPTH} levels"
    assert nesting('{"a": "[[[[[[", "b": [{"c": []}]}') == 4
    assert check_json(b'{"k": "' + b"[" * 100 + b'"}') == {"k": "[" * 100}


def test_a_large_body_is_refused_with_413() -> None:
    reply = post_json('{"address": "' + "x" * MAX_BODY + '"}')
    assert reply.status_code == 413
    assert reply.json()["error"] == {"field": "body", "reason": f"larger than {MAX_BODY} bytes"}


def test_a_chunked_body_is_counted_too() -> None:
    async def go() -> tuple[int, bytes]:
        sent: list[dict] = []
        chunks = [b"[" * 40_000, b"]" * 40_000]

        async def receive() -> dict:
            return {"type": "http.request", "body": chunks.pop(0), "more_body": bool(chunks)}

        async def send(message: dict) -> None:
            sent.append(message)

        async def never(scope, receive, send) -> None:
            raise AssertionError("the application must not see this request")

        scope = {
            "type": "http",
            "method": "POST",
            "path": "/api/v1/resources/ip",
            "headers": [(b"transfer-encoding", b"chunked")],
        }
        await StrictInput(never)(scope, receive, send)
        return sent[0]["status"], sent[1]["body"]

    status, body = asyncio.run(go())
    assert status == 413 and b"larger than" in body


def test_nan_and_bad_json_are_refused() -> None:
    assert post_json('{"priority": NaN}').json()["error"] == {
        "field": "body",
        "reason": "NaN is not JSON",
    }
    bad = post_json('{"address": ')
    assert bad.status_code == 400 and bad.json()["error"]["reason"].startswith("not valid JSON")


def test_repeated_single_headers_are_refused() -> None:
    reply = call(
        "GET", "/api/v1/status", headers=[("Content-Type", "text/plain"), ("Content-Type", "x/y")]
    )
    assert reply.status_code == 400
    assert reply.json()["error"]["reason"] == "more than one content-type header"


@pytest.mark.parametrize(
    ("path", "field", "reason"),
    [
        ("/api/v1/events?after=100000000000000000000", "after", "is above the maximum"),
        ("/api/v1/events?after=-1", "after", "-1 is below the minimum 0"),
        ("/api/v1/events?limit=0", "limit", "0 is below the minimum 1"),
        ("/api/v1/events?limit=10001", "limit", "10001 is above the maximum 10000"),
        ("/api/v1/events/stream?after=99999999999999999999", "after", "is above the maximum"),
        ("/api/v1/interfaces?address=&netmask=24", "address", "must not be empty"),
        ("/api/v1/resources/" + "t" * 64, "tag", "is longer than 63 characters"),
    ],
)
def test_integers_and_strings_out_of_bounds_are_400_not_500(
    path: str, field: str, reason: str
) -> None:
    reply = call("GET", path)
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["field"] == field
    assert reason in reply.json()["error"]["reason"]


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({"address": "", "netmask": "24"}, "address", "must not be empty"),
        ({"address": "198.18.0.50", "netmask": ""}, "netmask", "must not be empty"),
        ({"address": "198.18.0.50", "netmask": "24", "priority": 1000}, "priority", "1000 is above the maximum 999"),
        ({"address": "198.18.0.50", "netmask": "24", "priority": 2**70}, "priority", f"{2**70} is above the maximum 999"),
        ({"address": "198.18.0.50", "netmask": "24", "switchback": "x"}, "switchback", "'x' must be one of 'intelligent' or 'automatic'"),
    ],
)  # fmt: skip
def test_the_schema_bounds_every_field(body: dict, field: str, reason: str) -> None:
    reply = post_json(json.dumps(body))
    assert reply.status_code == 400
    assert reply.json()["error"] == {"field": field, "reason": reason}


def test_the_schema_says_what_validation_does() -> None:
    schema = create_app(SimpleNamespace()).openapi()  # type: ignore[arg-type]
    props = schema["components"]["schemas"]["CreateIP"]["properties"]
    assert props["address"]["minLength"] == 1 and props["netmask"]["minLength"] == 1
    assert (props["priority"]["minimum"], props["priority"]["maximum"]) == (1, 999)
    params = {p["name"]: p for p in schema["paths"]["/api/v1/events"]["get"]["parameters"]}
    assert params["after"]["schema"]["maximum"] == 2**63 - 1


def test_405_lists_every_method_of_the_path() -> None:
    reply = call("POST", "/api/v1/resources/some-tag")
    assert reply.status_code == 405
    assert reply.headers["allow"] == "DELETE, GET"
    assert call("POST", "/static/app.js").headers["allow"] == "GET, HEAD"
    assert call("DELETE", "/api/v1/status").headers["allow"] == "GET"


@pytest.mark.parametrize("path", ["/", "/static/app.js", "/api/v1/nothing", "/api/v1/openapi.json"])
def test_every_answer_has_the_security_headers(path: str) -> None:
    reply = call("GET", path)
    assert reply.headers["content-security-policy"] == CSP
    assert "script-src 'self';" in CSP and "unsafe-inline" not in CSP
    assert reply.headers["x-frame-options"] == "DENY"
    assert reply.headers["x-content-type-options"] == "nosniff"
    assert reply.headers["referrer-policy"] == "no-referrer"
    if path.startswith("/api/"):
        assert reply.headers["cache-control"] == "no-store"
