"""`python -m ipkeeper.lab.smalldisk --size BYTES DIR -- CMD...`: run CMD with DIR on a small disk.

For the lab's full-disk fault: the process gets a mount namespace of its own
(private: nothing it mounts is seen anywhere else, and it all goes when the
process ends), a tmpfs of BYTES bytes is mounted over DIR holding a copy of
what DIR held, and CMD is exec'd (same PID). Nothing of the machine's own
disks or mounts is touched; a test fills the disk, and frees it, through
/proc/PID/root.
"""

from __future__ import annotations

import ctypes
import os
import stat
import sys
from pathlib import Path

CLONE_NEWNS = 0x00020000
MS_NOSUID, MS_NODEV, MS_REC, MS_PRIVATE = 0x2, 0x4, 0x4000, 0x40000


def _libc_call(name: str, *args: object) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if getattr(libc, name)(*args) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{name}: {os.strerror(errno)}")


def on_small_disk(directory: Path, size: int) -> None:
    """Put `directory` on a tmpfs of `size` bytes in a new private mount namespace, with
    a copy of the regular files it held (their contents and modes)."""
    kept = {
        p.name: (p.read_bytes(), stat.S_IMODE(p.stat().st_mode))
        for p in directory.iterdir()
        if p.is_file() and not p.is_symlink()
    }
    _libc_call("unshare", CLONE_NEWNS)
    _libc_call("mount", b"none", b"/", None, MS_REC | MS_PRIVATE, None)
    options = f"size={size},mode=0700".encode()
    _libc_call("mount", b"tmpfs", str(directory).encode(), b"tmpfs", MS_NOSUID | MS_NODEV, options)
    for name, (data, mode) in kept.items():
        fd = os.open(directory / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)


def main() -> None:
    """Entry point: --size BYTES DIR -- CMD..."""
    args = sys.argv[1:]
    if len(args) < 5 or args[0] != "--size" or args[3] != "--" or not args[1].isdigit():
        print("usage: python -m ipkeeper.lab.smalldisk --size BYTES DIR -- CMD...", file=sys.stderr)
        raise SystemExit(2)
    try:
        on_small_disk(Path(args[2]), int(args[1]))
        os.execvp(args[4], args[4:])
    except OSError as exc:
        print(f"error: smalldisk: {exc}", file=sys.stderr)
        raise SystemExit(127) from exc


if __name__ == "__main__":
    main()
