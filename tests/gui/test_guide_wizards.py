"""The guide's wizards in Chromium, on a three-server lab: extend with a page per resource,
Accept Defaults and Next Server; create on any server and Continue into extend; the
netmask by address family; the ping list edited, confirmed and saved (issue 14)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from ipkeeper.lab import control, daemons
from ipkeeper.lab.topology import Topology
from ipkeeper.testing.labtools import LabServer
from tests.conftest import App

pytestmark = pytest.mark.lab

VIP_A, VIP_B = "198.18.2.70", "198.18.3.70"  # subnets new to every server (R3: any interface)
IP_A, IP_B = f"ip-{VIP_A}", f"ip-{VIP_B}"


@pytest.fixture(scope="module")
def lab() -> Iterator[Topology]:
    """Three servers, for Next Server."""
    control.down()
    try:
        yield control.up(3)
    finally:
        control.down()


def open_gui(page: Page, lab: Topology) -> None:
    page.goto(daemons.api_url(lab.node("s1")) + "/")
    page.get_by_label("Token", exact=True).fill(daemons.token_path().read_text().strip())
    page.get_by_role("button", name="Use token", exact=True).click()
    expect(page.locator("#servers tbody tr")).to_have_count(3)


def press(page: Page, label: str) -> None:
    page.locator("#wizard-next").filter(has_text=label).click()


def extra(page: Page, label: str) -> None:
    page.locator("#wizard-extra").get_by_role("button", name=label, exact=True).click()


def interfaces_on(s1: LabServer, server: str) -> dict[str, str]:
    return {tag: s1.json("show", tag, "--server", server)["interface"] for tag in (IP_A, IP_B)}


def test_extend_wizard_page_per_resource_then_next_server_with_accept_defaults(
    page: Page, lab: Topology, servers: dict[str, LabServer], app: App
) -> None:
    s1 = servers["s1"]
    for address, ifname in ((VIP_A, "eth1"), (VIP_B, "eth0")):
        s1.json("create", "ip", "--address", address, "--netmask", "24",
                "--interface", ifname, "--no-broadcast-ping")  # fmt: skip
    s1.json(*app.create_args("app"))
    s1.json("depend", "app", IP_A)
    s1.json("depend", "app", IP_B)
    open_gui(page, lab)
    page.get_by_role("button", name="app", exact=True).click()
    page.get_by_role("button", name="Extend…", exact=True).click()
    expect(page.get_by_label("Template server")).to_have_value("s1")
    expect(page.get_by_label("Target server")).to_have_value("s2")
    expect(page.get_by_label("Template priority")).to_have_value("1")
    press(page, "Next")

    # A page per resource, children first; IP and netmask read-only; the template's
    # interface name offered, and every valid choice on the target.
    expect(page.locator("#wizard-step")).to_have_text(re.compile(r"Step 2 of 4: ip-198\.18\."))
    first = page.locator("#wizard-step").text_content() or ""
    pages = {IP_A: "eth0", IP_B: "eth1"}  # each swapped: on s2 elsewhere than on s1
    for n in range(2):
        tag = IP_A if IP_A in (page.locator("#wizard-step").text_content() or "") else IP_B
        vip = VIP_A if tag == IP_A else VIP_B
        address = page.get_by_label("IP resource", exact=True)
        expect(address).to_have_value(vip)
        expect(address).to_have_attribute("readonly", "")
        expect(page.get_by_label("Netmask", exact=True)).to_have_value("255.255.255.0")
        chooser = page.get_by_label("Interface on s2")
        expect(chooser).to_have_value("eth1" if tag == IP_A else "eth0")
        expect(chooser.locator("option")).to_have_count(2)
        chooser.select_option(pages[tag])
        press(page, "Next")
        if n == 0:
            expect(page.locator("#wizard-step")).not_to_have_text(first)
    expect(page.locator("#wizard-step")).to_have_text("Step 4 of 4: app on the target")
    expect(page.get_by_label("Target tag", exact=True)).to_have_value("app")
    press(page, "Finish")
    extended = page.locator("#extended li")
    expect(extended).to_have_count(3)
    expect(page.locator("#extended")).to_contain_text(f"{IP_A}: {VIP_A} on eth0")
    expect(page.locator("#wizard-body")).to_contain_text("its interface differs between servers")
    assert interfaces_on(s1, "s2") == {IP_A: "eth0", IP_B: "eth1"}

    # Next Server: the same hierarchy to s3, all defaults at once.
    extra(page, "Next Server")
    expect(page.get_by_label("Target server")).to_have_value("s3")
    expect(page.get_by_label("Template priority")).to_have_count(0)  # first extend only
    page.get_by_label("Target priority").fill("20")
    extra(page, "Accept Defaults")
    expect(page.locator("#wizard-step")).to_have_text("Extended to s3")
    expect(page.locator("#extended")).to_contain_text(f"{IP_A}: {VIP_A} on eth1")
    expect(page.locator("#extended")).to_contain_text(f"{IP_B}: {VIP_B} on eth0")
    expect(page.locator("#wizard-extra button")).to_have_count(0)  # no server left
    press(page, "Done")
    expect(page.locator("#wizard")).to_be_hidden()
    assert interfaces_on(s1, "s3") == {IP_A: "eth1", IP_B: "eth0"}
    assert s1.json("show", "app", "--server", "s3")["priority"] == 20


def test_create_on_another_server_then_continue_into_extend(
    page: Page, lab: Topology, servers: dict[str, LabServer]
) -> None:
    s1, s2 = servers["s1"], servers["s2"]
    open_gui(page, lab)
    page.get_by_role("button", name="Create IP resource…", exact=True).click()
    address, netmask = page.get_by_label("IP address or host name"), page.get_by_label("Netmask")
    address.fill("2001:db8::71")
    expect(netmask).to_have_value("64")  # IPv6: a prefix length
    address.fill("198.18.0.71")
    expect(netmask).to_have_value("255.255.255.0")
    page.get_by_label("Server", exact=True).select_option("s2")
    press(page, "Next")
    expect(page.get_by_label("Interface", exact=True)).to_have_value("eth0")
    expect(page.locator("#wizard-body")).to_contain_text("Valid choices on s2")
    page.get_by_label("Ping list (optional)").fill("198.18.0.1 198.18.0.13")
    press(page, "Finish")
    expect(page.locator("#wizard-step")).to_have_text("ip-198.18.0.71 is ISP on s2")
    expect(page.locator("#wizard-body")).to_contain_text("198.18.0.13 is an address of s3")
    assert s2.has_address("198.18.0.71") and not s1.has_address("198.18.0.71")
    assert s2.json("pinglist", "ip-198.18.0.71")["addresses"] == ["198.18.0.1", "198.18.0.13"]

    press(page, "Continue")  # into the extend wizard, from s2, its template
    expect(page.locator("#wizard-title")).to_have_text("Extend ip-198.18.0.71")
    expect(page.get_by_label("Template server")).to_have_value("s2")
    page.get_by_label("Target server").select_option("s1")
    extra(page, "Accept Defaults")
    expect(page.locator("#extended")).to_have_text("ip-198.18.0.71: 198.18.0.71 on eth0")
    press(page, "Done")
    assert s1.state("ip-198.18.0.71", "s1") == "OSU"


def test_the_ping_list_is_edited_then_saved_after_confirmation(
    page: Page, lab: Topology, servers: dict[str, LabServer]
) -> None:
    s1 = servers["s1"]
    tag = "ip-198.18.0.72"
    s1.json("create", "ip", "--address", "198.18.0.72", "--netmask", "24")
    s1.json("pinglist", tag, "clear")  # the subnet's list outlives earlier tests' resources
    open_gui(page, lab)
    page.get_by_role("button", name=tag, exact=True).click()
    page.get_by_role("button", name="Properties…", exact=True).click()
    page.get_by_role("tab", name="IP settings", exact=True).click()
    add = page.get_by_role("button", name="Add address", exact=True)
    remove = page.get_by_role("button", name="Remove selected address(es)", exact=True)
    save = page.get_by_role("button", name="Save list", exact=True)
    expect(add).to_be_disabled()  # until an address is typed
    expect(remove).to_be_disabled()  # until one is selected
    expect(save).to_be_disabled()  # until the list changed
    page.get_by_label("Address to add").fill("198.18.0.1 198.18.0.97 198.18.0.98")
    expect(add).to_be_enabled()
    add.click()
    pings = page.get_by_label("Ping list", exact=True)
    pings.select_option(["198.18.0.97", "198.18.0.98"])  # several at once
    remove.click()
    expect(pings.locator("option")).to_have_text(["198.18.0.1"])
    page.get_by_label("Address to add").fill("198.18.0.12")
    page.get_by_label("Address to add").press("Enter")
    assert s1.json("pinglist", tag)["addresses"] == []  # nothing saved yet
    save.click()
    expect(page.locator("#wizard-step")).to_have_text("Save the ping list for 198.18.0.0/24 on s1?")
    expect(page.locator("#wizard-body")).to_contain_text("To be saved198.18.0.1, 198.18.0.12")
    press(page, "Save")
    expect(page.locator("#wizard-step")).to_have_text("Ping list saved")
    expect(page.locator("#wizard-body")).to_contain_text("198.18.0.12 is an address of s2")
    press(page, "Done")
    expect(page.get_by_label("Ping list", exact=True).locator("option")).to_have_count(2)
    assert s1.json("pinglist", tag)["addresses"] == ["198.18.0.1", "198.18.0.12"]
    page.keyboard.press("Escape")
