"""The TCP API's tokens, roles and failure count, without a network: the ASGI app in-process."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import httpx
import pytest

from ipkeeper.api.auth import (
    BearerAuth,
    Credentials,
    Role,
    TokenFileError,
    load_token,
    needs_token,
    read_tokens,
    required_role,
    source_of,
)
from ipkeeper.api.throttle import MAX_SOURCES, FailureGuard, Limits

ADMIN = "a" * 32
VIEWER = "v" * 32


async def app(scope, receive, send) -> None:
    role = scope.get("state", {}).get("role", "none")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": role.encode()})


def request(
    method: str,
    path: str,
    headers: list[tuple[str, str]] | None = None,
    guard: FailureGuard | None = None,
    client: tuple[str, int] = ("198.18.0.100", 40000),
) -> httpx.Response:
    async def go() -> httpx.Response:
        auth = BearerAuth(app, Credentials.fixed(ADMIN, VIEWER), guard or FailureGuard())
        transport = httpx.ASGITransport(app=auth, client=client)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            return await http.request(method, path, headers=headers or [])

    return asyncio.run(go())


def bearer(token: str) -> list[tuple[str, str]]:
    return [("Authorization", f"Bearer {token}")]


def test_routes_that_need_the_token() -> None:
    assert needs_token("/api/v1/status") and needs_token("/metrics")
    assert not needs_token("/") and not needs_token("/static/app.js")
    assert not needs_token("/api/v1/openapi.json")


def test_missing_and_wrong_tokens_get_401_with_a_json_reason() -> None:
    missing = request("GET", "/api/v1/status")
    assert missing.status_code == 401
    assert missing.json() == {"error": {"field": "authorization", "reason": "missing bearer token"}}
    assert missing.headers["www-authenticate"].startswith("Bearer")
    wrong = request("GET", "/api/v1/status", bearer("nope"))
    assert wrong.json()["error"]["reason"] == "wrong token"
    assert request("GET", "/").status_code == 200


def test_a_viewer_reads_and_only_an_admin_changes() -> None:
    assert required_role("GET") is Role.viewer and required_role("HEAD") is Role.viewer
    assert all(required_role(m) is Role.admin for m in ("POST", "PUT", "DELETE", "PATCH"))
    assert request("GET", "/api/v1/status", bearer(VIEWER)).text == "viewer"
    assert request("GET", "/metrics", bearer(VIEWER)).text == "viewer"
    for method in ("POST", "PUT", "DELETE"):
        refused = request(method, "/api/v1/resources/app", bearer(VIEWER))
        assert refused.status_code == 403
        assert refused.json()["error"] == {
            "field": "authorization",
            "reason": f"{method} needs the admin role; this is a viewer token",
        }
        assert request(method, "/api/v1/resources/app", bearer(ADMIN)).text == "admin"


def test_more_than_one_authorization_header_is_refused() -> None:
    # The last one would have been accepted before: the first one must not be ignored.
    both = request(
        "GET",
        "/api/v1/status",
        [("Authorization", "Bearer wrong"), ("Authorization", f"Bearer {ADMIN}")],
    )
    assert both.status_code == 400
    assert both.json()["error"] == {
        "field": "authorization",
        "reason": "more than one Authorization header",
    }


def test_a_source_that_fails_too_often_is_refused_even_with_the_right_token() -> None:
    now = [1000.0]
    blocked: list[str] = []
    reasons: list[str] = []
    guard = FailureGuard(
        lambda: Limits(failures=5, window=60, block=30),
        on_block=lambda source, _limits: blocked.append(source),
        on_failure=reasons.append,
        clock=lambda: now[0],
    )
    codes = [
        request("GET", "/api/v1/status", bearer("x" * 20), guard).status_code for _ in range(8)
    ]
    assert codes == [401] * 5 + [429] * 3
    assert blocked == ["198.18.0.100"] and reasons == ["wrong"] * 5
    refused = request("GET", "/api/v1/status", bearer(ADMIN), guard)
    assert refused.status_code == 429 and refused.headers["retry-after"] == "30"
    assert "too many failed authentications from 198.18.0.100" in refused.json()["error"]["reason"]
    # Another source is not affected; the blocked one may try again after the block.
    other = request("GET", "/api/v1/status", bearer(ADMIN), guard, ("198.18.0.101", 1))
    assert other.status_code == 200
    now[0] += 31
    assert request("GET", "/api/v1/status", bearer(ADMIN), guard).status_code == 200


def test_failures_outside_the_window_do_not_add_up() -> None:
    now = [0.0]
    guard = FailureGuard(lambda: Limits(failures=3, window=10, block=60), clock=lambda: now[0])
    for _ in range(10):
        guard.failed("s", "wrong")
        now[0] += 6  # never 3 within 10 s
    assert guard.refused("s") is None


def test_the_failure_table_is_bounded() -> None:
    guard = FailureGuard(lambda: Limits(failures=2))
    for i in range(MAX_SOURCES + 100):
        guard.failed(f"source-{i}", "wrong")
    assert len(guard._sources) == MAX_SOURCES
    assert "source-0" not in guard._sources


def test_sources_are_addresses_and_ipv6_counts_by_its_64() -> None:
    assert source_of({"client": ("198.18.0.100", 1)}) == "198.18.0.100"
    assert source_of({"client": ("2001:db8::100", 1)}) == "2001:db8::/64"
    assert source_of({"client": ("2001:db8:0:0:ffff::1", 1)}) == "2001:db8::/64"
    assert source_of({"client": ("::ffff:198.18.0.7", 1)}) == "198.18.0.7"
    assert source_of({}) == "unknown"


def test_token_files_hold_one_token_a_line_and_are_private(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(f"# the admin tokens\n{ADMIN}\n{'b' * 20}  # the next one\n")
    os.chmod(path, 0o640)
    with pytest.raises(TokenFileError, match="lets others read it"):
        read_tokens(path)
    os.chmod(path, 0o600)
    assert read_tokens(path) == {ADMIN.encode(), b"b" * 20}
    assert load_token(path) == ADMIN
    path.write_text("short\n")
    with pytest.raises(TokenFileError, match="line 1: a token is at least 16 characters"):
        read_tokens(path)


def test_token_rotation_without_a_restart_and_a_broken_file_grants_nothing(
    tmp_path: Path,
) -> None:
    admin, viewer = tmp_path / "admin", tmp_path / "viewer"
    for path, text in ((admin, ADMIN), (viewer, VIEWER)):
        path.write_text(text + "\n")
        os.chmod(path, 0o600)
    refused: list[str] = []
    creds = Credentials.load(admin, viewer, refused.append)
    assert creds.roles() == ["admin", "viewer"]
    assert creds.role_of(ADMIN.encode()) is Role.admin
    assert creds.role_of(VIEWER.encode()) is Role.viewer
    new = "n" * 32
    admin.write_text(f"{ADMIN}\n{new}\n")  # both accepted while clients move over
    assert creds.role_of(new.encode()) is Role.admin
    assert creds.role_of(ADMIN.encode()) is Role.admin
    admin.write_text(f"{new}\n")  # the old one retired
    assert creds.role_of(ADMIN.encode()) is None
    os.chmod(admin, 0o644)  # unusable: fail closed
    assert creds.role_of(new.encode()) is None
    assert refused and "lets others read it" in refused[0]
    assert creds.role_of(VIEWER.encode()) is Role.viewer  # the other file still works


def test_the_api_reference_gives_every_operation_its_role() -> None:
    from types import SimpleNamespace

    from ipkeeper.api.app import create_app

    doc = create_app(SimpleNamespace()).openapi()  # type: ignore[arg-type]
    operations = [(m, op) for item in doc["paths"].values() for m, op in item.items()]
    assert len(operations) >= 18
    for method, op in operations:
        role = required_role(method).name
        assert op["x-ipkeeper-role"] == role
        assert op["description"].startswith(f"Role: **{role}**")
    assert doc["paths"]["/api/v1/resources/app"]["post"]["x-ipkeeper-role"] == "admin"
    assert doc["paths"]["/api/v1/status"]["get"]["x-ipkeeper-role"] == "viewer"
