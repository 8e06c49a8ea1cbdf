"""A browser in the lab for the GUI tests; a failing test leaves a screenshot."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from ipkeeper.config.tls import read_certificate
from ipkeeper.lab import daemons
from ipkeeper.lab.topology import Topology
from ipkeeper.testing.browser import FLAGS, chromium_in

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator:
    report = yield
    if report.when == "call":
        item.stash[FAILED] = report.failed
    return report


FAILED = pytest.StashKey[bool]()


@pytest.fixture(scope="module")
def browser(lab: Topology) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        # Trust the lab's self-signed certificate and nothing else of its kind: its SPKI pin.
        pin = read_certificate(daemons.cert_path()).spki_sha256
        launched = playwright.chromium.launch(
            executable_path=str(chromium_in("ipk-client")),
            args=[*FLAGS, f"--ignore-certificate-errors-spki-list={pin}"],
            headless=True,
        )
        yield launched
        launched.close()


@contextlib.contextmanager
def watched_page(
    browser: Browser, request: pytest.FixtureRequest, **context_options: Any
) -> Iterator[Page]:
    """A page in a new context that fails its test on any CSP violation and leaves a
    screenshot when the test fails."""
    context = browser.new_context(**context_options)
    opened = context.new_page()
    opened.set_default_timeout(10_000)
    # Every GUI flow must keep to the Content-Security-Policy (no inline script or style).
    violations: list[str] = []
    opened.on(
        "console",
        lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None,
    )
    opened.violations = violations  # type: ignore[attr-defined]
    yield opened
    if request.node.stash.get(FAILED, False):
        ARTIFACTS.mkdir(exist_ok=True)
        opened.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()
    assert violations == [], f"the page broke its CSP: {violations}"


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    with watched_page(browser, request, viewport={"width": 1280, "height": 900}) as opened:
        yield opened
