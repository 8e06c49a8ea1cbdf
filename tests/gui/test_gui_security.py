"""Every page the daemon serves carries the security headers, and its CSP holds in a real
browser: an injected inline script, an inline handler and another origin's script are
blocked, while the GUI and the API viewer (Swagger UI) never trip it."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, Response, expect

from ipkeeper.api.headers import CSP
from ipkeeper.lab import daemons
from ipkeeper.lab.topology import Topology
from ipkeeper.testing.labtools import LabServer
from tests.gui.test_gui import open_gui

pytestmark = pytest.mark.lab

INJECT = """(source) => new Promise((resolve) => {
  document.addEventListener("securitypolicyviolation",
    (e) => resolve({directive: e.effectiveDirective, blocked: e.blockedURI}), {once: true});
  const script = document.createElement("script");
  if (source) script.src = source; else script.textContent = "window.injected = true;";
  document.body.append(script);
  setTimeout(() => resolve(null), 3000);
})"""

HANDLER = """() => new Promise((resolve) => {
  document.addEventListener("securitypolicyviolation",
    (e) => resolve({directive: e.effectiveDirective, blocked: e.blockedURI}), {once: true});
  const button = document.createElement("button");
  button.setAttribute("onclick", "window.injected = true");
  document.body.append(button);
  button.click();
  setTimeout(() => resolve(null), 3000);
})"""


def check_headers(response: Response) -> None:
    headers = response.all_headers()
    where = response.url
    assert headers.get("content-security-policy") == CSP, where
    assert headers.get("x-frame-options") == "DENY", where
    assert headers.get("x-content-type-options") == "nosniff", where
    assert headers.get("referrer-policy") == "no-referrer", where
    if "/api/" in where or where.endswith("/metrics"):
        assert headers.get("cache-control") == "no-store", where


def test_every_page_has_the_headers_and_the_csp_blocks_injected_script(
    page: Page, lab: Topology, servers: dict[str, LabServer]
) -> None:
    seen: list[Response] = []
    page.on("response", lambda r: seen.append(r))
    open_gui(page, lab)
    page.get_by_role("button", name="History…", exact=True).click()
    expect(page.locator("#events-table")).to_contain_text("ready")
    page.get_by_role("button", name="Close", exact=True).click()
    base = daemons.api_url(lab.node("s1"))
    paths = {r.url.removeprefix(base).split("?")[0] for r in seen}
    assert {
        "/",
        "/static/app.js",
        "/static/style.css",
        "/api/v1/status",
        "/api/v1/history",
    } <= paths
    for response in seen:
        check_headers(response)

    assert page.evaluate(INJECT, None) == {"directive": "script-src-elem", "blocked": "inline"}
    assert page.evaluate(HANDLER) == {"directive": "script-src-attr", "blocked": "inline"}
    foreign = daemons.api_url(lab.node("s2")) + "/static/app.js"  # another origin, same code
    assert page.evaluate(INJECT, foreign) == {"directive": "script-src-elem", "blocked": foreign}
    assert page.evaluate("window.injected") is None
    # Those three were ours; the GUI's own use above raised none.
    assert len(page.violations) == 3  # type: ignore[attr-defined]

    # The daemon's other pages: the API viewer, the OpenAPI document, a missing page.
    page.violations.clear()  # type: ignore[attr-defined]
    for other in ("/api/docs", "/api/v1/openapi.json", "/no-such-page"):
        seen.clear()
        response = page.goto(base + other)
        assert response is not None
        if other == "/api/docs":  # Swagger UI starts from its own file, within the CSP
            expect(page.locator(".swagger-ui .opblock").first).to_be_visible()
            assert {"/docs-assets/swagger-ui-bundle.js", "/static/api-docs.js"} <= {
                r.url.removeprefix(base) for r in seen
            }
        for each in seen:
            check_headers(each)
    assert page.violations == []  # type: ignore[attr-defined]
