"""The application kit's command runner: no shell, timeouts, and the root-only rule."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ipkeeper.kits.app import scripts
from ipkeeper.kits.app.kit import validate_app


def script(directory: Path, body: str, mode: int = 0o755) -> Path:
    directory.mkdir(mode=0o700, exist_ok=True)
    path = directory / "s.sh"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(mode)
    return path


def test_arguments_are_never_interpreted_by_a_shell(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    outcome = scripts.run(f"/bin/echo 'hello; touch {marker}' $(id)", {}, 5)
    assert outcome.ok
    assert outcome.output == f"hello; touch {marker} $(id)"
    assert not marker.exists()


def test_environment_carries_tag_and_action(tmp_path: Path) -> None:
    path = script(tmp_path / "bin", 'echo "$IPKEEPER_TAG/$IPKEEPER_ACTION"\n')
    outcome = scripts.run(str(path), {"IPKEEPER_TAG": "app", "IPKEEPER_ACTION": "check"}, 5)
    assert outcome.output == "app/check"


def test_a_command_that_overruns_is_killed(tmp_path: Path) -> None:
    path = script(tmp_path / "bin", "sleep 30 &\nsleep 30\n")
    outcome = scripts.run(str(path), {}, 0.3)
    assert outcome.returncode is None and not outcome.ok
    assert outcome.seconds < 5


def test_writable_programs_are_refused(tmp_path: Path) -> None:
    loose = script(tmp_path / "bin", "true\n", mode=0o777)
    with pytest.raises(scripts.CommandError, match="writable by non-root users"):
        scripts.check_command(str(loose))
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    open_dir.chmod(0o777)
    (open_dir / "t").write_text("#!/bin/sh\n")
    (open_dir / "t").chmod(0o755)
    with pytest.raises(scripts.CommandError, match=f"{open_dir} is writable by non-root users"):
        scripts.check_command(str(open_dir / "t"))


def test_missing_and_malformed_commands(tmp_path: Path) -> None:
    with pytest.raises(scripts.CommandError, match="not found"):
        scripts.check_command("no-such-program-here")
    with pytest.raises(scripts.CommandError, match="cannot be split"):
        scripts.check_command("echo 'unbalanced")
    with pytest.raises(scripts.CommandError, match="is empty"):
        scripts.check_command("   ")
    assert scripts.check_command("true")[0] == os.path.realpath(
        "/usr/bin/true"
    ) or scripts.check_command("true")[0].endswith("/true")


def test_validate_app_names_the_field() -> None:
    with pytest.raises(ValueError, match=r"^check: is required"):
        validate_app({"restore": "true", "remove": "true"})
    with pytest.raises(ValueError, match=r"^timeout: must be between"):
        validate_app({"restore": "true", "remove": "true", "check": "true", "timeout": 0})
    assert validate_app({"restore": "true", "remove": "true", "check": "true"})["timeout"] == 60.0
