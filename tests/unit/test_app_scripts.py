"""The application kit's command runner: no shell, timeouts, and the root-only rule."""

from __future__ import annotations

import contextlib
import os
import signal
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


def test_a_daemon_left_running_does_not_hold_the_command(tmp_path: Path) -> None:
    # A restore command that starts a server in its own session, which keeps
    # the command's output open: the command is done when it exits.
    pidfile = tmp_path / "daemon.pid"
    path = script(tmp_path / "bin", f"echo started\nsetsid sleep 20 &\necho $! > {pidfile}\n")
    try:
        outcome = scripts.run(str(path), {}, 10)
        assert outcome.ok and outcome.output == "started"
        assert outcome.seconds < 5
    finally:
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(pidfile.read_text()), signal.SIGKILL)


def test_long_output_keeps_its_beginning_and_end(tmp_path: Path) -> None:
    path = script(tmp_path / "bin", "echo first\nseq 1 20000\necho last\n")
    outcome = scripts.run(str(path), {}, 10)
    assert outcome.output.startswith("first") and outcome.output.endswith("last")
    assert "[...]" in outcome.output and len(outcome.output) < scripts.OUTPUT_LIMIT + 20
