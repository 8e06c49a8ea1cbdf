"""The fuzzing run's hooks keep every address in the lab's ranges and run no program."""

from __future__ import annotations

from ipkeeper.testing.fuzz_hooks import HARMLESS, VIP4, VIP6, lab_address, lab_body


def test_addresses_outside_the_lab_and_host_names_become_lab_vips() -> None:
    assert lab_address("198.18.0.60") == "198.18.0.60"
    assert lab_address("2001:db8::60") == "2001:db8::60"
    assert lab_address("8.8.8.8") == VIP4
    assert lab_address("::1") == VIP6
    assert lab_address("www.example.org") == VIP4  # would be resolved
    assert lab_address("not an address!") == "not an address!"  # left to be refused
    assert lab_address("1.2.3") == "1.2.3"
    assert lab_address(17) == 17


def test_bodies_keep_their_shape_with_safe_values() -> None:
    body = {"address": "10.0.0.1", "netmask": "8", "addresses": ["10.1.1.1", "x y"], "tag": "t"}
    assert lab_body(body) == {
        "address": VIP4,
        "netmask": "8",
        "addresses": [VIP4, "x y"],
        "tag": "t",
    }
    app = {"tag": "a", "restore": "/sbin/reboot", "remove": "", "check": 5, "recover": "rm -rf /"}
    assert lab_body(app) == {"tag": "a", "restore": HARMLESS, "remove": "", "check": 5,
                             "recover": HARMLESS}  # fmt: skip
    assert lab_body(["not", "a", "dict"]) == ["not", "a", "dict"]
