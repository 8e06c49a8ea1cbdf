"""The operator's GUI in Chromium: a crashed server's page says so at once and offers
the others; every wizard and dialog works on a phone; properties in the guide's panels;
the cluster's history with filters."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from ipkeeper.lab import daemons, faults
from ipkeeper.lab.topology import Topology
from ipkeeper.testing import wait_until
from ipkeeper.testing.labtools import LabServer
from tests.conftest import App
from tests.gui.conftest import watched_page
from tests.gui.test_gui import SCREENSHOT, cell, open_gui

pytestmark = pytest.mark.lab

VIP = "198.18.0.52"
TAG = f"ip-{VIP}"
PHONE = {"width": 390, "height": 844}
DATE_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


@pytest.fixture
def phone(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    options = {"viewport": PHONE, "device_scale_factor": 2, "has_touch": True}
    with watched_page(browser, request, **options) as opened:
        yield opened


def assert_in_view(button: Locator) -> None:
    """The whole button is on the screen (nothing to scroll to, nothing cut off)."""
    expect(button).to_be_visible()
    box = button.bounding_box()
    assert box is not None
    inside = (
        box["x"] >= 0
        and box["y"] >= 0
        and box["x"] + box["width"] <= PHONE["width"]
        and box["y"] + box["height"] <= PHONE["height"]
    )
    assert inside, f"{button} at {box} is outside the {PHONE} screen"


def last(page: Page, label: str = "Done") -> None:
    """Press the button of a page that reports what was done (no Cancel there)."""
    button = page.locator("#wizard-next").filter(has_text=label)
    assert_in_view(button)
    button.click()


def step(page: Page, label: str = "Next") -> None:
    """Check the wizard's buttons are on screen, then press Next (or Finish, OK...)."""
    assert_in_view(page.locator("#wizard-cancel"))
    button = page.locator("#wizard-next").filter(has_text=label)
    assert_in_view(button)
    button.click()


def test_a_crashed_servers_page_says_so_within_3_s_and_offers_the_other_gui(
    page: Page, lab: Topology, servers: dict[str, LabServer]
) -> None:
    open_gui(page, lab)
    expect(page.locator("#connection")).to_contain_text("updated")
    expect(page.locator("#banner")).to_be_hidden()

    faults.crash(lab.node("s1"))
    try:
        banner = page.locator("#banner")
        expect(banner).to_be_visible(timeout=3000)
        expect(page.locator("#banner-text")).to_contain_text("s1 is not answering")
        expect(page.locator("#banner-text")).to_contain_text(DATE_TIME)
        expect(page.locator("main")).to_have_class(re.compile(r"stale-page"))
        expect(page.locator("#banner-text")).to_contain_text(re.compile(r"no answer for [3-9] s"))
        other = banner.get_by_role("link", name="s2 (198.18.0.12)")
        # The lab serves HTTPS: the other server's GUI is offered over it too.
        expect(other).to_have_attribute("href", daemons.api_url(lab.node("s2")) + "/")
        assert daemons.api_url(lab.node("s2")).startswith("https://")
        page.screenshot(path=str(SCREENSHOT.parent / "gui-no-answer.png"))
        other.click()
        page.get_by_label("Token", exact=True).fill(daemons.token_path().read_text().strip())
        page.get_by_role("button", name="Use token", exact=True).click()
        expect(page.locator("#server-name")).to_have_text("— s2")
        expect(page.locator('#servers tr[data-server="s1"] td').first).to_have_text("no")
        expect(page.locator("#banner")).to_be_hidden()
    finally:
        faults.recover(lab.node("s1"))
    s2 = servers["s2"]
    wait_until(lambda: all(x["alive"] for x in s2.status()["servers"]), 10, message="s1 back")
    expect(page.locator('#servers tr[data-server="s1"] td').first).to_have_text("yes")


def test_every_wizard_can_be_completed_and_every_dialog_closed_on_a_phone(
    phone: Page, lab: Topology, servers: dict[str, LabServer], app: App
) -> None:
    page = phone
    page.goto(daemons.api_url(lab.node("s1")) + "/")
    assert_in_view(page.get_by_role("button", name="Use token", exact=True))
    page.get_by_label("Token", exact=True).fill(daemons.token_path().read_text().strip())
    page.get_by_role("button", name="Use token", exact=True).click()
    expect(page.locator("#servers tbody tr")).to_have_count(2)

    page.get_by_role("button", name="Create IP resource…", exact=True).click()
    page.get_by_label("IP address or host name").fill(VIP)
    step(page)
    step(page, "Finish")
    assert_in_view(page.locator("#wizard-next").filter(has_text="Continue"))
    page.locator("#wizard-cancel").click()
    expect(cell(page, TAG, "s1")).to_contain_text("ISP")

    page.get_by_role("button", name="Create application resource…", exact=True).click()
    for label, value in (
        ("Tag", "web"),
        ("Start command", app.command("start")),
        ("Stop command", app.command("stop")),
        ("Check command", app.command("check")),
    ):
        page.get_by_label(label, exact=True).fill(value)
    step(page, "Finish")
    assert_in_view(page.locator("#wizard-next").filter(has_text="Continue"))
    page.locator("#wizard-cancel").click()
    expect(cell(page, "web", "s1")).to_contain_text("ISP")

    page.get_by_role("button", name="web", exact=True).click()
    page.get_by_role("button", name="Create dependency…", exact=True).click()
    page.get_by_label("Child", exact=True).select_option(TAG)
    step(page, "OK")
    page.get_by_role("button", name="web", exact=True).click()
    page.get_by_role("button", name="Extend…", exact=True).click()
    assert_in_view(page.locator("#wizard-extra").get_by_role("button", name="Accept Defaults"))
    step(page)
    step(page)
    step(page, "Finish")
    last(page)
    expect(cell(page, "web", "s2")).to_contain_text("OSU")

    page.get_by_role("button", name="In service…", exact=True).click()
    page.get_by_label("Server", exact=True).select_option("s2")
    step(page, "OK")
    expect(cell(page, "web", "s2")).to_contain_text("ISP")

    page.get_by_role("button", name=f"└ {TAG}", exact=True).click()
    page.get_by_role("button", name="Properties…", exact=True).click()
    expect(page.locator("#prop-state")).to_contain_text("ISP")
    page.screenshot(path=str(SCREENSHOT.parent / "gui-phone-properties.png"))
    for tab in ("Relations", "Equivalencies", "IP settings", "General"):
        page.get_by_role("tab", name=tab, exact=True).click()
        assert_in_view(page.locator("#wizard-next"))
    page.get_by_role("tab", name="IP settings", exact=True).click()
    page.get_by_label("Address to add").fill("198.18.0.1")
    page.get_by_role("button", name="Add address", exact=True).click()
    page.get_by_role("button", name="Save list", exact=True).click()
    step(page, "Save")
    try:
        expect(page.locator("#wizard-step")).to_have_text("Ping list saved", timeout=10_000)
    except AssertionError as exc:
        said = page.locator("#wizard-error").text_content()
        raise AssertionError(f"ping list not saved; the dialog says {said!r}") from exc
    last(page)
    page.get_by_role("tab", name="IP settings", exact=True).click()
    expect(page.get_by_label("Ping list", exact=True).locator("option")).to_have_count(1)
    page.get_by_label("Restore and recover", exact=True).select_option("disable")
    step(page, "Apply settings")
    expect(page.locator("#wizard")).to_be_hidden()
    assert servers["s2"].json("show", TAG)["restore_recover"] == "disable"

    page.get_by_role("button", name="History…", exact=True).click()
    expect(page.locator("#events-table")).to_contain_text("restore-recover set to disable")
    assert_in_view(page.locator("#wizard-next").filter(has_text="Close"))
    page.locator("#wizard-next").filter(has_text="Close").click()
    expect(page.locator("#wizard")).to_be_hidden()

    page.get_by_role("button", name="web", exact=True).click()
    page.get_by_role("button", name="Out of service…", exact=True).click()
    step(page, "OK")
    expect(cell(page, "web", "s2")).to_contain_text("OSU")
    page.get_by_role("button", name="Unextend…", exact=True).click()
    page.get_by_label("Server", exact=True).select_option("s2")
    step(page, "OK")
    expect(cell(page, "web", "s2")).to_have_text("not extended")
    page.get_by_role("button", name="Delete dependency…", exact=True).click()
    step(page, "OK")
    for tag in ("web", TAG):
        page.get_by_role("button", name=tag, exact=True).click()
        page.get_by_role("button", name="Delete…", exact=True).click()
        step(page, "OK")
        expect(page.locator(f'#resources tr[data-tag="{tag}"]')).to_have_count(0)

    page.get_by_role("button", name="Create IP resource…", exact=True).click()
    page.locator("#wizard-cancel").click()  # and Cancel closes a dialog as well
    expect(page.locator("#wizard")).to_be_hidden()


def test_properties_panels_show_state_since_and_reason_on_each_server(
    page: Page, lab: Topology, servers: dict[str, LabServer]
) -> None:
    s1 = servers["s1"]
    s1.json("create", "ip", "--address", VIP, "--netmask", "24")
    s1.json("extend", TAG, "--target", "s2")
    open_gui(page, lab)
    page.get_by_role("button", name=TAG, exact=True).click()
    page.get_by_role("button", name="Properties…", exact=True).click()

    panel = page.get_by_role("tabpanel", name="General")
    expect(panel.locator("#prop-state")).to_contain_text("ISP in service, protected")
    expect(panel.locator("#prop-since")).to_have_text(DATE_TIME)
    expect(panel.locator("#prop-reason")).to_contain_text(f"created: {VIP}/24 up on eth0")
    page.get_by_role("tab", name="Equivalencies", exact=True).click()
    equivalents = page.locator("#equivalents")
    expect(equivalents).to_contain_text("s1")
    expect(equivalents.locator("tbody tr")).to_have_count(2)
    expect(equivalents.locator("tbody tr").nth(1)).to_contain_text(re.compile(r"s2.*10.*OSU"))
    page.get_by_role("tab", name="IP settings", exact=True).click()
    ip = page.get_by_role("tabpanel", name="IP settings")
    expect(ip).to_contain_text("Subnet198.18.0.0/24 (24 bits)")
    expect(ip.get_by_label("Source address", exact=True)).to_have_value("no")
    expect(ip).to_contain_text("Empty: the broadcast ping is used")

    page.get_by_label("Server", exact=True).select_option("s2")
    expect(page.locator("#wizard-step")).to_have_text("On server s2")
    panel = page.get_by_role("tabpanel", name="General")
    expect(panel.locator("#prop-state")).to_contain_text("OSU out of service")
    expect(panel.locator("#prop-since")).to_have_text(DATE_TIME)
    expect(panel.locator("#prop-reason")).to_have_text("extended here")
    page.keyboard.press("Escape")


def test_the_cluster_history_shows_every_server_and_filters(
    page: Page, lab: Topology, servers: dict[str, LabServer]
) -> None:
    s1, s2 = servers["s1"], servers["s2"]
    vip = "198.18.0.53"  # its own events: earlier tests' are in the history too
    tag = f"ip-{vip}"
    s1.json("create", "ip", "--address", vip, "--netmask", "24")
    s1.json("extend", tag, "--target", "s2")
    s2.json("pinglist", tag, "add", "198.18.0.97")  # an event of s2's alone
    open_gui(page, lab)
    page.get_by_role("button", name="History…", exact=True).click()
    rows = page.locator("#events-table tbody tr")
    # (s2's list for the subnet may hold earlier tests' addresses: it outlives resources)
    pings = rows.filter(has_text=re.compile(r"ping list for 198\.18\.0\.0/24: .*198\.18\.0\.97"))
    expect(pings).to_contain_text("s2")
    expect(rows.first).to_contain_text(DATE_TIME)
    created = rows.filter(has_text=tag).filter(has_text="created: ip resource in service on s1")
    expect(created).to_have_count(1)

    page.get_by_label("Server", exact=True).select_option("s2")
    expect(created).to_have_count(0)
    expect(rows.filter(has_text="198.18.0.97")).to_have_count(1)
    page.get_by_label("Server", exact=True).select_option("")
    page.get_by_label("Kind", exact=True).select_option("admin")
    expect(rows.filter(has_text=f"extended to s2 with priority 10: {tag}")).to_have_count(1)
    expect(rows.filter(has_text="daemon:")).to_have_count(0)
    page.get_by_label("Kind", exact=True).select_option("")
    page.get_by_label("Resource", exact=True).select_option(tag)
    expect(rows.filter(has_text="ready; API on")).to_have_count(0)
    expect(rows.filter(has_text="198.18.0.97")).to_have_count(1)
    expect(rows.filter(has_text=VIP)).to_have_count(0)
    page.locator("#wizard-next").filter(has_text="Close").click()
    expect(page.locator("#wizard")).to_be_hidden()
