"""Every page the daemon serves works with nothing but the daemon reachable: no CDN, no
font service, no third-party script next to the API token."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, Request, Route, expect

from ipkeeper.lab import daemons
from ipkeeper.lab.topology import Topology
from ipkeeper.testing.labtools import LabServer

pytestmark = pytest.mark.lab


def test_every_page_loads_with_the_network_beyond_the_daemon_blocked(
    page: Page, lab: Topology, servers: dict[str, LabServer]
) -> None:
    base = daemons.api_url(lab.node("s1"))
    outside: list[str] = []
    failed: list[str] = []
    loaded: list[str] = []

    def only_the_daemon(route: Route) -> None:
        url = route.request.url
        if url == base or url.startswith(base + "/"):
            loaded.append(url.removeprefix(base))
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    def on_failure(request: Request) -> None:
        # Leaving the GUI for the next page cancels its polling: that is no failure.
        if request.failure != "net::ERR_ABORTED":
            failed.append(f"{request.url}: {request.failure}")

    page.route("**/*", only_the_daemon)
    page.on("requestfailed", on_failure)

    page.goto(base + "/")
    page.get_by_label("Token", exact=True).fill(daemons.token_path().read_text().strip())
    page.get_by_role("button", name="Use token", exact=True).click()
    expect(page.locator("#servers tbody tr")).to_have_count(2)
    page.wait_for_load_state("networkidle")

    page.goto(base + "/api/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("ipkeeper")
    expect(page.locator(".swagger-ui .opblock").first).to_be_visible()
    page.wait_for_load_state("networkidle")

    assert outside == []
    assert failed == []
    assert {"/docs-assets/swagger-ui-bundle.js", "/static/api-docs.js"} <= set(loaded)
    assert "/api/v1/openapi.json" in loaded
    assert page.violations == []  # type: ignore[attr-defined]  # the CSP let Swagger UI run
