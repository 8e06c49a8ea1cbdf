"""The TCP API's token check and error shape, without a network: the ASGI app in-process."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import httpx
import pytest

from ipkeeper.api.auth import BearerAuth, TokenFileError, load_token, needs_token

TOKEN = "t" * 32


async def app(scope, receive, send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def get(path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=BearerAuth(app, TOKEN))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get(path, headers=headers or {})

    return asyncio.run(go())


def test_routes_that_need_the_token() -> None:
    assert needs_token("/api/v1/status") and needs_token("/metrics")
    assert not needs_token("/") and not needs_token("/static/app.js")
    assert not needs_token("/api/v1/openapi.json")


def test_missing_and_wrong_tokens_get_401_with_a_json_reason() -> None:
    missing = get("/api/v1/status")
    assert missing.status_code == 401
    assert missing.json() == {"error": {"field": "authorization", "reason": "missing bearer token"}}
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert (
        get("/api/v1/status", {"Authorization": "Bearer nope"}).json()["error"]["reason"]
        == "wrong token"
    )
    assert get("/api/v1/status", {"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert get("/").status_code == 200


def test_token_file_rules(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(TOKEN)
    os.chmod(path, 0o640)
    with pytest.raises(TokenFileError, match="lets others read it"):
        load_token(path)
    os.chmod(path, 0o600)
    assert load_token(path) == TOKEN


def test_api_errors_are_always_json_with_a_field_and_a_reason() -> None:
    from types import SimpleNamespace

    from ipkeeper.api.app import create_app

    app = create_app(SimpleNamespace())  # type: ignore[arg-type]

    async def go(method: str, path: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.request(method, path)

    missing = asyncio.run(go("GET", "/api/v1/nothing"))
    assert missing.status_code == 404
    assert missing.json() == {"error": {"field": "request", "reason": "no such route"}}
    wrong = asyncio.run(go("DELETE", "/api/v1/status"))
    assert (
        wrong.status_code == 405
        and wrong.json()["error"]["reason"] == "method not allowed on this route"
    )
    broken = asyncio.run(go("GET", "/api/v1/status"))  # the fake engine cannot answer
    assert broken.status_code == 500 and broken.json()["error"]["field"] == "server"
