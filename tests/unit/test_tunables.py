"""Tunables (R11): read at each use, bad values reported and replaced by the default."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from ipkeeper.config.tunables import TUNABLES, Tunables, parse_lines


def test_defaults_when_the_file_is_missing(tmp_path: Path) -> None:
    tun = Tunables(tmp_path / "absent")
    assert tun.get("IP_PINGTIME") == 1.0
    assert tun.get("IP_PINGTRIES") == 3
    assert tun.get("NOBCASTPING") is False
    assert {e.source for e in tun.all()} == {"default"}


def test_shell_syntax_is_parsed_not_executed(tmp_path: Path) -> None:
    text = (
        'export IP_PINGTIME="2.5"  # comment\n'
        "# NOIPUNIQUE=1\nNOBCASTPING=1\nIP_PINGTRIES=$(reboot)\n"
    )
    assert parse_lines(text) == {
        "IP_PINGTIME": "2.5",
        "NOBCASTPING": "1",
        "IP_PINGTRIES": "$(reboot)",
    }


def test_a_change_takes_effect_at_the_next_use(tmp_path: Path) -> None:
    path = tmp_path / "ipkeeper"
    tun = Tunables(path)
    path.write_text("IP_PINGTRIES=5\n")
    assert tun.get("IP_PINGTRIES") == 5
    path.write_text("IP_PINGTRIES=7\n")
    os.utime(path, ns=(1, 1))  # same size, new timestamp: still noticed
    assert tun.get("IP_PINGTRIES") == 7
    path.unlink()
    assert tun.get("IP_PINGTRIES") == 3


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("IP_PINGTRIES=lots", "must be a whole number"),
        ("IP_PINGTRIES=0", "must be between 1 and 20"),
        ("NOBCASTPING=yes", "must be 0 or 1"),
        ("IP_PINGTIME=-1", "must be between"),
    ],
)
def test_invalid_values_fall_back_and_are_reported_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, line: str, why: str
) -> None:
    path = tmp_path / "ipkeeper"
    path.write_text(line + "\n")
    tun = Tunables(path)
    name = line.split("=")[0]
    with caplog.at_level(logging.WARNING):
        first = tun.effective(name)
        tun.effective(name)
    assert first.value == TUNABLES[name].default
    assert first.source.startswith("default (invalid") and why in first.source
    assert len([r for r in caplog.records if name in r.getMessage()]) == 1


def test_a_file_others_may_change_is_not_read(tmp_path: Path) -> None:
    """Whoever may write the tunables file could set NOIPUNIQUE=1: the values in force stay."""
    path = tmp_path / "tunables"
    path.write_text("NOIPUNIQUE=0\nIP_PINGTRIES=5\n")
    tunables = Tunables(path)
    assert tunables.get("IP_PINGTRIES") == 5
    path.write_text("NOIPUNIQUE=1\nIP_PINGTRIES=2\n")
    path.chmod(0o666)
    assert (tunables.get("NOIPUNIQUE"), tunables.get("IP_PINGTRIES")) == (False, 5)
    path.chmod(0o644)
    assert (tunables.get("NOIPUNIQUE"), tunables.get("IP_PINGTRIES")) == (True, 2)
    os.chown(path, 65534, -1)
    path.write_text("NOIPUNIQUE=0\n")
    assert tunables.get("NOIPUNIQUE") is True
