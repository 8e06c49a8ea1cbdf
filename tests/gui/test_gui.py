"""The web GUI in a real browser (R28), and the same tasks through the API (R27, R33)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

from ipkeeper.lab import daemons
from ipkeeper.lab.topology import Topology
from ipkeeper.testing import run_cli
from ipkeeper.testing.labtools import LabServer, holders
from tests.conftest import App

pytestmark = pytest.mark.lab

VIP = "198.18.0.50"
TAG = f"ip-{VIP}"
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "gui-status.png"


def open_gui(page: Page, lab: Topology) -> None:
    page.goto(daemons.api_url(lab.node("s1")) + "/")
    page.get_by_label("Token", exact=True).fill(daemons.token_path().read_text().strip())
    page.get_by_role("button", name="Use token", exact=True).click()
    expect(page.locator("#servers tbody tr")).to_have_count(2)


def cell(page: Page, tag: str, server: str) -> Locator:
    return page.locator(f'#resources tr[data-tag="{tag}"] td[data-server="{server}"]')


def wizard_next(page: Page, label: str = "Next") -> None:
    page.locator("#wizard-next").filter(has_text=label).click()


def test_create_extend_switch_over_and_edit_the_ping_list(
    page: Page, lab: Topology, servers: dict[str, LabServer], app: App
) -> None:
    open_gui(page, lab)
    expect(page.locator('#servers tr[data-server="s2"]')).to_contain_text(
        "198.18.0.11 → 198.18.0.12: up"
    )

    # Create an IP resource with the wizard: defaults offered, errors explained.
    page.get_by_role("button", name="Create IP resource…", exact=True).click()
    page.get_by_label("IP address or host name").fill("198.18.0.300")
    expect(page.get_by_label("Netmask", exact=True)).to_have_value("255.255.255.0")
    wizard_next(page)
    expect(page.locator("#wizard-error")).to_have_text(
        "address: '198.18.0.300' is not a valid IPv4 or IPv6 address"
    )
    expect(page.get_by_label("IP address or host name")).to_have_attribute("aria-invalid", "true")
    page.get_by_label("IP address or host name").fill(VIP)
    wizard_next(page)
    expect(page.get_by_label("Interface", exact=True)).to_have_value("eth0")
    expect(page.get_by_label("Tag", exact=True)).to_have_value(TAG)
    page.get_by_role("button", name="Back", exact=True).click()
    expect(page.get_by_label("IP address or host name")).to_have_value(VIP)
    wizard_next(page)
    wizard_next(page, "Finish")
    expect(page.locator("#wizard-step")).to_have_text(f"{TAG} is ISP on s1")
    page.locator("#wizard-cancel").click()  # extended later, as a hierarchy
    expect(page.locator("#notice")).to_contain_text("not extended to another server yet")
    expect(cell(page, TAG, "s1")).to_contain_text("ISP")

    # An application (made through the API) joined to the VIP in the GUI: a hierarchy.
    servers["s1"].json(*app.create_args("web"))
    page.get_by_role("button", name="web", exact=True).click()
    # Alone it is not extended: nothing would keep it off s2 while it runs on s1.
    page.get_by_role("button", name="Extend…", exact=True).click()
    wizard_next(page)
    expect(page.locator("#wizard-error")).to_contain_text(
        "target: web has no IP resource below it; with QUORUM=none nothing would stop it"
    )
    page.locator("#wizard-cancel").click()
    page.get_by_role("button", name="Create dependency…", exact=True).click()
    page.get_by_label("Child", exact=True).select_option(TAG)
    wizard_next(page, "OK")
    expect(page.get_by_role("button", name=f"└ {TAG}", exact=True)).to_be_visible()

    # Extend the hierarchy to s2 with the target's interface choices.
    page.get_by_role("button", name=f"└ {TAG}", exact=True).click()
    page.get_by_role("button", name="Extend…", exact=True).click()
    expect(page.get_by_label("Target server")).to_have_value("s2")
    expect(page.get_by_label("Target priority")).to_have_value("10")
    wizard_next(page)
    expect(page.get_by_label("IP resource", exact=True)).to_have_value(VIP)
    expect(page.get_by_label("Interface on s2")).to_have_value("eth0")
    wizard_next(page, "Finish")
    expect(page.locator("#extended")).to_have_text(f"{TAG}: {VIP} on eth0")
    wizard_next(page, "Done")
    expect(cell(page, TAG, "s2")).to_contain_text(re.compile(r"OSU.*priority 10"))
    page.get_by_role("button", name="web", exact=True).click()
    page.get_by_role("button", name="Extend…", exact=True).click()
    wizard_next(page)
    expect(page.get_by_label("Target tag", exact=True)).to_have_value("web")
    wizard_next(page, "Finish")
    wizard_next(page, "Done")
    expect(cell(page, "web", "s2")).to_contain_text(re.compile(r"OSU.*priority 10"))

    # Switch it over to s2: the states change on the page without reloading.
    page.get_by_role("button", name="In service…", exact=True).click()
    page.get_by_label("Server", exact=True).select_option("s2")
    wizard_next(page, "OK")
    expect(cell(page, "web", "s2")).to_contain_text("ISP")
    expect(cell(page, TAG, "s2")).to_contain_text("ISP")
    expect(cell(page, TAG, "s1")).to_contain_text("OSU")
    assert holders(list(servers.values()), VIP) == ["s2"]

    # Edit s2's ping list from s1's GUI.
    page.get_by_role("button", name=f"└ {TAG}", exact=True).click()
    page.get_by_role("button", name="Properties…", exact=True).click()
    page.get_by_role("tab", name="IP settings", exact=True).click()
    expect(page.locator("#properties")).to_contain_text("Virtual IP198.18.0.50")
    pings = page.get_by_label("Ping list", exact=True)
    page.get_by_label("Address to add").fill("198.18.0.1 198.18.0.97")
    page.get_by_role("button", name="Add address", exact=True).click()
    expect(pings.locator("option")).to_have_count(2)
    assert servers["s2"].api("GET", f"/resources/{TAG}/pinglist")["addresses"] == []  # not saved
    page.get_by_role("button", name="Save list", exact=True).click()
    wizard_next(page, "Save")
    expect(page.locator("#wizard-step")).to_have_text("Ping list saved")
    wizard_next(page, "Done")
    assert servers["s2"].api("GET", f"/resources/{TAG}/pinglist")["addresses"] == [
        "198.18.0.1",
        "198.18.0.97",
    ]
    pings.select_option("198.18.0.97")
    page.get_by_role("button", name="Remove selected address(es)", exact=True).click()
    expect(pings.locator("option")).to_have_count(1)
    page.get_by_label("Address to add").fill("not-an-address")
    page.get_by_label("Address to add").press("Enter")
    page.get_by_role("button", name="Save list", exact=True).click()
    wizard_next(page, "Save")
    expect(page.locator("#wizard-error")).to_contain_text(
        "pinglist: 'not-an-address' is not an IPv4 or IPv6 address"
    )
    assert servers["s2"].api("GET", f"/resources/{TAG}/pinglist")["addresses"] == [
        "198.18.0.1",
        "198.18.0.97",
    ]  # refused as a whole: nothing changed
    page.locator("#wizard-extra").get_by_role("button", name="Back to properties").click()
    pings.select_option("not-an-address")  # the list as it was being edited
    page.get_by_role("button", name="Remove selected address(es)", exact=True).click()
    page.get_by_role("button", name="Save list", exact=True).click()
    wizard_next(page, "Save")
    wizard_next(page, "Done")
    assert servers["s2"].api("GET", f"/resources/{TAG}/pinglist")["addresses"] == ["198.18.0.1"]
    page.get_by_role("button", name="Cancel", exact=True).click()

    page.get_by_role("button", name="History…", exact=True).click()
    expect(page.locator("#events-table")).to_contain_text("in service requested on s2")
    page.get_by_role("button", name="Close", exact=True).click()
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT))


def test_the_gui_is_usable_from_the_keyboard(
    page: Page, lab: Topology, servers: dict[str, LabServer]
) -> None:
    open_gui(page, lab)
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Create IP resource…", exact=True)).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_label("IP address or host name")).to_be_focused()
    page.keyboard.type("198.18.0.51")
    page.keyboard.press("Enter")  # Next
    expect(page.get_by_label("Interface", exact=True)).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_label("Tag", exact=True)).to_be_focused()
    page.keyboard.press("Enter")  # Finish
    expect(cell(page, "ip-198.18.0.51", "s1")).to_contain_text("ISP")
    page.keyboard.press("Escape")


def curl(*args: str) -> tuple[int, dict]:
    """curl from the client, as the README shows; (HTTP status, JSON body)."""
    proc = run_cli(
        "lab", "exec", "client", "--", "curl", "-s", "--cacert", str(daemons.cert_path()),
        "-w", "\n%{http_code}", *args,
    )  # fmt: skip
    body, _, code = proc.stdout.rpartition("\n")
    return int(code), json.loads(body) if body.strip() else {}


def test_the_same_through_the_api_and_a_missing_token_changes_nothing(
    lab: Topology, servers: dict[str, LabServer]
) -> None:
    url = daemons.api_url(lab.node("s1")) + "/api/v1"
    auth = [
        "-H",
        f"Authorization: Bearer {daemons.token_path().read_text().strip()}",
        "-H",
        "Content-Type: application/json",
    ]
    code, body = curl(
        "-X",
        "POST",
        f"{url}/resources/ip",
        "-H",
        "Content-Type: application/json",
        "-d",
        json.dumps({"address": VIP, "netmask": "24"}),
    )
    assert (code, body) == (
        401,
        {"error": {"field": "authorization", "reason": "missing bearer token"}},
    )
    code, _ = curl("-H", "Authorization: Bearer wrong-token-wrong-token", f"{url}/status")
    assert code == 401
    assert servers["s1"].status()["resources"] == []
    assert holders(list(servers.values()), VIP) == []

    code, body = curl(
        *auth,
        "-X",
        "POST",
        f"{url}/resources/ip",
        "-d",
        json.dumps({"address": VIP, "netmask": "24"}),
    )
    assert code == 201 and body["state"] == "ISP"
    code, body = curl(
        *auth, "-X", "POST", f"{url}/resources/{TAG}/extend", "-d", json.dumps({"target": "s2"})
    )
    assert code == 200 and body["extended"] == [TAG]
    code, body = curl(
        *auth, "-X", "POST", f"{url}/resources/{TAG}/in-service", "-d", json.dumps({"server": "s2"})
    )
    assert code == 200 and body["server"] == "s2"
    code, body = curl(
        *auth,
        "-X",
        "POST",
        f"{url}/resources/{TAG}/pinglist?server=s2",
        "-d",
        json.dumps({"verb": "add", "addresses": ["198.18.0.1"]}),
    )
    assert code == 200 and body["addresses"] == ["198.18.0.1"] and body["server"] == "s2"
    code, body = curl(
        *auth,
        "-X",
        "POST",
        f"{url}/resources/{TAG}/extend",
        "-d",
        json.dumps({"target": "s2", "target_priority": 0}),
    )
    assert (code, body["error"]) == (
        400,
        {"field": "target_priority", "reason": "0 is below the minimum 1"},
    )
    code, body = curl(*auth, f"{url}/status")
    assert body["resources"][0]["servers"]["s2"]["state"] == "ISP"
    assert holders(list(servers.values()), VIP) == ["s2"]

    proc = run_cli(
        "lab",
        "exec",
        "client",
        "--",
        "curl",
        "-s",
        "--cacert",
        str(daemons.cert_path()),
        "-H",
        auth[1],
        f"{daemons.api_url(lab.node('s1'))}/metrics",
    )
    assert re.search(
        r'ipkeeper_instance_state\{server="s2",state="ISP",tag="ip-198.18.0.50"\} 1.0', proc.stdout
    )
    assert (
        'ipkeeper_comm_path_up{local="198.18.0.11",peer="s2",remote="198.18.0.12"} 1.0'
        in proc.stdout
    )
    code, body = curl(f"{url}/openapi.json")
    assert code == 200 and "/api/v1/resources/{tag}/extend" in body["paths"]


def test_settings_out_of_service_unextend_undepend_and_delete_in_the_gui(
    page: Page, lab: Topology, servers: dict[str, LabServer], app: App
) -> None:
    s1 = servers["s1"]
    s1.json("create", "ip", "--address", VIP, "--netmask", "24")
    s1.json(*app.create_args("web"))
    s1.json("depend", "web", TAG)
    s1.json("extend", "web", "--target", "s2")
    open_gui(page, lab)
    child = page.get_by_role("button", name=f"└ {TAG}", exact=True)

    child.click()
    page.get_by_role("button", name="Properties…", exact=True).click()
    page.get_by_role("tab", name="IP settings", exact=True).click()
    page.get_by_label("Source address", exact=True).select_option("yes")
    wizard_next(page, "Apply settings")
    expect(page.locator("#notice")).to_contain_text("takes effect at the next bring-up")
    assert s1.json("show", TAG)["source_address"] == "yes"

    page.get_by_role("button", name="web", exact=True).click()
    page.get_by_role("button", name="Out of service…", exact=True).click()
    wizard_next(page, "OK")
    expect(cell(page, "web", "s1")).to_contain_text("OSU")
    expect(cell(page, TAG, "s1")).to_contain_text("OSU")

    page.get_by_role("button", name="Unextend…", exact=True).click()
    page.get_by_label("Server", exact=True).select_option("s2")
    wizard_next(page, "OK")
    expect(cell(page, "web", "s2")).to_have_text("not extended")

    page.get_by_role("button", name="Delete dependency…", exact=True).click()
    page.get_by_label("Child", exact=True).select_option(TAG)
    wizard_next(page, "OK")
    expect(page.get_by_role("button", name=TAG, exact=True)).to_be_visible()  # a root again

    page.get_by_role("button", name=TAG, exact=True).click()
    page.get_by_role("button", name="Delete…", exact=True).click()
    wizard_next(page, "OK")
    expect(page.locator(f'#resources tr[data-tag="{TAG}"]')).to_have_count(0)
    assert [r["tag"] for r in s1.status()["resources"]] == ["web"]
