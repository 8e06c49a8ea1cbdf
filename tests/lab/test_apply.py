"""`ipkeeper apply FILE`: hundreds of resources at once, idempotent, only the difference
applied, and a file with one bad entry applying nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from ipkeeper.testing.labtools import LabServer

pytestmark = pytest.mark.lab

DOCUMENT = """
[defaults]
netmask = "22"
interface = "eth0"
servers = { s1 = 1, s2 = 10 }

[[ip]]
range = "198.18.4.10-198.18.4.209"

[[group]]
tag = "web-vips"
children = ["ip-198.18.4.*"]
{extra}
"""


def write(tmp_path: Path, extra: str = "", name: str = "vips.toml") -> Path:
    path = tmp_path / name
    path.write_text(DOCUMENT.replace("{extra}", extra))
    return path


def counts(server: LabServer) -> tuple[int, int]:
    """(resources known, resources in service here)."""
    resources = server.status()["resources"]
    here = sum(1 for r in resources if r["servers"].get(server.name, {}).get("state") == "ISP")
    return len(resources), here


def test_apply_creates_extends_and_groups_two_hundred_vips(
    pair: tuple[LabServer, LabServer], tmp_path: Path
) -> None:
    s1, s2 = pair
    path = write(tmp_path)
    preview = s1.json("apply", str(path), "--dry-run")
    assert preview["dry_run"] and len(preview["create"]) == 201
    assert counts(s1) == (0, 0)  # a dry run changes nothing
    done = s1.json("apply", str(path))
    assert len(done["create"]) == 201 and len(done["extend"]["s2"]) == 201
    assert counts(s1) == (201, 201)
    assert counts(s2) == (201, 0)
    group = s1.json("show", "web-vips")
    assert len(group["children"]) == 200
    assert [e["server"] for e in group["equivalents"]] == ["s1", "s2"]

    again = s1.json("apply", str(path))
    assert again["changes"] == 0 and again["unchanged"] == 201

    edited = write(
        tmp_path,
        extra='\n[[ip]]\naddress = "198.18.5.1"\ntag = "extra-vip"\n',
        name="edited.toml",
    )
    edited.write_text(
        edited.read_text().replace('tag = "web-vips"', 'tag = "web-vips"\nswitchback = "automatic"')
    )
    diff = s1.json("apply", str(edited))
    assert diff["create"] == ["extra-vip"]
    assert diff["switchback"] == [["web-vips", "automatic"]]
    assert diff["unchanged"] == 200
    assert s1.json("show", "web-vips")["switchback"] == "automatic"
    assert counts(s1) == (202, 202)


def test_one_bad_entry_applies_nothing_and_is_named(
    pair: tuple[LabServer, LabServer], tmp_path: Path
) -> None:
    s1, _ = pair
    bad = write(tmp_path, extra='\n[[ip]]\naddress = "198.18.6.1"\nnetmask = "255.0.255.0"\n')
    refused = s1.cli("apply", str(bad))
    assert refused.returncode == 1
    assert refused.stderr.strip().startswith("error: ip-198.18.6.1.netmask: ")
    assert len(refused.stderr.strip().splitlines()) == 1
    assert counts(s1) == (0, 0)
    taken = write(tmp_path, extra='\n[[ip]]\naddress = "198.18.0.12"\nnetmask = "24"\n')
    answered = s1.cli("apply", str(taken))
    assert answered.returncode == 1
    assert "ip-198.18.0.12.address" in answered.stderr
    assert counts(s1) == (0, 0)
