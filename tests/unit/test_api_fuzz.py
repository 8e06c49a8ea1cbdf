"""What the schemathesis run sends is made harmless without changing its validity, and how
it is run (every check, the lab's TLS, the token and seed asked for)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

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


def test_the_address_query_is_made_a_lab_one_and_other_queries_stay() -> None:
    query = api_fuzz.safe_query({"address": "8.8.8.8", "netmask": "24", "server": "s2"})
    assert query["address"].startswith("198.18.0.8") and query["netmask"] == "24"
    assert api_fuzz.safe_query({"limit": 5}) == {"limit": 5}
    assert api_fuzz.safe_query(None) is None


def test_the_command_line_runs_every_check_over_tls_with_the_token_and_seed_asked_for(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    argv = api_fuzz.command("https://198.18.0.11:7480", "T", tmp_path / "ca.crt", 3, 7)
    assert argv[argv.index("--checks") + 1] == "all"
    assert argv[argv.index("--exclude-checks") + 1] == "positive_data_acceptance"
    assert argv[argv.index("--tls-verify") + 1] == str(tmp_path / "ca.crt")
    assert "Authorization: Bearer T" in argv and argv[argv.index("--seed") + 1] == "7"
    assert argv[argv.index("--exclude-path") + 1] == "/api/v1/events/stream"
    token_file = tmp_path / "token"
    token_file.write_text("lab-admin-token-0123456789\n")
    monkeypatch.delenv("IPKEEPER_FUZZ_TOKEN", raising=False)
    monkeypatch.delenv("IPKEEPER_FUZZ_SEED", raising=False)
    assert api_fuzz.token(token_file) == "lab-admin-token-0123456789"
    assert api_fuzz.seed() == api_fuzz.DEFAULT_SEED
    monkeypatch.setenv("IPKEEPER_FUZZ_TOKEN", "a-viewer-token-0123456789")
    monkeypatch.setenv("IPKEEPER_FUZZ_SEED", "13")
    assert api_fuzz.token(token_file) == "a-viewer-token-0123456789" and api_fuzz.seed() == 13
