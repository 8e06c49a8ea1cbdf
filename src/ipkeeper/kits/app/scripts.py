"""Running an administrator's command safely: argv only, never a shell.

A command is split with shlex and executed directly, with a timeout (its
whole process group is killed when it overruns), the resource's tag and the
action in the environment, and its output captured for the event log. As in
keepalived, a program that a non-root user could modify is never run as
root: the program file and every directory above it must be writable by
root only (a root-owned sticky directory such as /tmp is accepted).
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

OUTPUT_LIMIT = 4000
SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class CommandError(ValueError):
    """A command that cannot be accepted, with the reason."""


def split(command: str) -> list[str]:
    """shlex-split `command`; refuse an empty or unbalanced one."""
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise CommandError(f"cannot be split into words: {exc}") from None
    if not argv:
        raise CommandError("is empty")
    return argv


def _unsafe(path: Path) -> str | None:
    st = path.stat()
    if st.st_uid not in (0, os.geteuid()):
        return f"{path} is owned by uid {st.st_uid}, not root"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        sticky_root_dir = stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX and st.st_uid == 0
        if not sticky_root_dir:
            return f"{path} is writable by non-root users"
    return None


def resolve(argv0: str) -> Path:
    """The absolute program path for `argv0`, checked as safe to run as root."""
    found = shutil.which(argv0, path=SAFE_PATH) if "/" not in argv0 else argv0
    if found is None:
        raise CommandError(f"program {argv0!r} not found")
    path = Path(found).resolve()
    if not path.is_file() or not os.access(path, os.X_OK):
        raise CommandError(f"{path} is not an executable file")
    for part in (path, *path.parents):
        problem = _unsafe(part)
        if problem:
            raise CommandError(f"{problem}; refusing to run it as root")
    return path


def check_command(command: str) -> list[str]:
    """Validate `command` now (split, program found and safe); the argv to run."""
    argv = split(command)
    argv[0] = str(resolve(argv[0]))
    return argv


@dataclass(frozen=True)
class Outcome:
    """How a command ended."""

    returncode: int | None  # None: killed after the timeout
    output: str
    seconds: float

    @property
    def ok(self) -> bool:
        """Exit status 0 within the timeout."""
        return self.returncode == 0


def _head_and_tail(out: BinaryIO) -> str:
    """The output, or its beginning and end when it is longer than OUTPUT_LIMIT."""
    size = os.fstat(out.fileno()).st_size
    out.seek(0)
    if size <= OUTPUT_LIMIT:
        return out.read().decode("utf-8", "replace")
    head = out.read(OUTPUT_LIMIT // 2)
    out.seek(size - OUTPUT_LIMIT // 2)
    tail = out.read()
    return (head + b"\n[...]\n" + tail).decode("utf-8", "replace")


def run(command: str, env: dict[str, str], timeout: float) -> Outcome:
    """Run `command` (re-checked now) with `env` added; never raises for a failed command."""
    start = time.monotonic()
    try:
        argv = check_command(command)
    except CommandError as exc:
        return Outcome(127, f"not run: {exc}", 0.0)
    # Output goes to a file, not a pipe: a daemon that the command starts may
    # keep its output open for ever, and the command must still count as done
    # when it exits (and as killed when it overruns), not when that pipe closes.
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={"PATH": SAFE_PATH, "LANG": "C.UTF-8", **env},
            start_new_session=True,
            cwd="/",
        )
        code: int | None
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            code = None
        text = _head_and_tail(out)
    return Outcome(code, text.strip(), time.monotonic() - start)
