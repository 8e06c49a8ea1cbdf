"""Work inside named network namespaces without `ip netns exec`.

The network namespace of a Linux thread can be changed with setns(2) without
affecting the other threads of the process, and a socket keeps the namespace
it was created in. So the lab enters a namespace in a short-lived thread to
create a socket or write a sysctl, and everything else stays where it was.
Named namespaces are the bind mounts under /run/netns, as iproute2 makes them.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

NETNS_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000

T = TypeVar("T")

_libc = ctypes.CDLL(None, use_errno=True)


def netns_path(name: str) -> Path:
    """Return the bind-mount path that names namespace `name`."""
    return NETNS_DIR / name


def exists(name: str) -> bool:
    """True when a named network namespace `name` exists."""
    return netns_path(name).exists()


def enter(name: str) -> None:
    """Move the calling thread into namespace `name` (raises OSError if absent)."""
    fd = os.open(netns_path(name), os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns into {name}: {os.strerror(err)}")
    finally:
        os.close(fd)


def call_in(name: str, fn: Callable[[], T]) -> T:
    """Run `fn` in a fresh thread inside namespace `name` and return its result.

    The thread ends afterwards, so the caller's own namespace never changes.
    Exceptions raised by `fn` are re-raised here.
    """
    result: list[T] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            enter(name)
            result.append(fn())
        except BaseException as exc:  # re-raised in the caller's thread
            error.append(exc)

    thread = threading.Thread(target=run, name=f"netns-{name}", daemon=True)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def socket_in(name: str, family: int, kind: int, proto: int = 0) -> socket.socket:
    """Create a socket that lives in namespace `name`."""
    return call_in(name, lambda: socket.socket(family, kind, proto))


def write_sysctl(name: str, key: str, value: str) -> None:
    """Set a network sysctl (`net.ipv4.icmp_echo_ignore_broadcasts`) in namespace `name`."""
    path = Path("/proc/sys") / key.replace(".", "/")

    def write() -> None:
        path.write_text(value)

    call_in(name, write)


def read_sysctl(name: str, key: str) -> str:
    """Read a network sysctl as seen from namespace `name`."""
    path = Path("/proc/sys") / key.replace(".", "/")
    return call_in(name, lambda: path.read_text().strip())


def _inode(path: str | Path) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def pids_in(names: Iterable[str]) -> list[int]:
    """PIDs of the processes whose network namespace is one of `names`."""
    wanted = {ino for ino in (_inode(netns_path(n)) for n in names) if ino is not None}
    if not wanted:
        return []
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _inode(f"/proc/{entry}/ns/net") in wanted:
            pids.append(int(entry))
    return sorted(pids)


def alive(pid: int) -> bool:
    """True while process `pid` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); it is gone for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def terminate(pids: Iterable[int], grace: float = 3.0) -> None:
    """Stop the given processes: SIGTERM, then SIGKILL after `grace` seconds."""
    pending = [p for p in pids if p != os.getpid()]
    for pid in pending:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while pending and time.monotonic() < deadline:
        pending = [p for p in pending if alive(p)]
        if pending:
            time.sleep(0.02)
    for pid in pending:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
