"""What the schemathesis run sends is made harmless without changing its validity."""

from __future__ import annotations

import ipaddress

from ipkeeper.lab.topology import ALLOWED
from ipkeeper.testing import api_fuzz


def test_addresses_become_lab_scratch_vips_and_names_unresolvable() -> None:
    for given in ("8.8.8.8", "198.18.0.11", "127.0.0.1", "::1", "2001:4860::8888"):
        mapped = ipaddress.ip_address(api_fuzz.safe_address(given))
        assert (
            any(mapped in net for net in ALLOWED)
            and 80 <= int(str(mapped).split(".")[-1].split(":")[-1]) <= 89
        )
    assert api_fuzz.safe_address("localhost") == "scratch.invalid"
    assert api_fuzz.safe_address("") == "" and api_fuzz.safe_address("a b\x00") == "a b\x00"
    body = api_fuzz.safe_body({"verb": "add", "addresses": ["10.0.0.1", "x y"]})
    assert body["addresses"][0].startswith("198.18.0.8") and body["addresses"][1] == "x y"


def test_commands_naming_a_program_of_this_host_become_true() -> None:
    assert api_fuzz.safe_command("/bin/sh -c 'reboot'") == "/bin/true"
    assert api_fuzz.safe_command("/no/such/program") == "/no/such/program"
    assert api_fuzz.safe_command("'unbalanced") == "'unbalanced"
    assert api_fuzz.safe_body({"tag": "t", "restore": "/usr/bin/env"})["restore"] == "/bin/true"


def test_half_the_valid_tags_become_scratch_resources() -> None:
    mapped = [api_fuzz.scratch_tags({"tag": f"t{i}"})["tag"] for i in range(200)]
    hits = sum(tag in api_fuzz.SCRATCH for tag in mapped)
    assert 60 < hits < 140
    assert api_fuzz.scratch_tags({"tag": "x" * 64}) == {"tag": "x" * 64}  # invalid stays so
