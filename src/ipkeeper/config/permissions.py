"""Who may change what the daemon trusts: files that can run code or change safety.

Whoever can write the configuration can name a key file, peers or a state
directory of their own; whoever can write the tunables file can set
`NOIPUNIQUE=1`; whoever can write the database can plant an application
resource whose restore command runs as root. So, before anything else
happens, the daemon refuses (one line per problem, naming the field, the
file and the reason; `ipkeeperd --check-config` reports the same lines):

- the configuration and tunables files unless owned by the daemon's user
  (root) and not writable by group or others;
- the state directory unless owned by that user with mode 0700 (no access
  at all for group or others);
- the database (and its `-wal` and `-shm` files) if it is a symbolic link
  or anything but a regular file, not owned by that user, or open to group
  or others (0600).

The key, token and TLS key files are stricter still (config/secrets.py:
owned by that user, 0600). Missing files are not problems here: a missing
tunables file means every default, a missing state directory or database is
created private at start.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

DATABASE_SUFFIXES = ("", "-wal", "-shm")


def owner_and_writers(st: os.stat_result) -> str | None:
    """Why a file with this stat must not be trusted (another owner, or writable by group
    or others), or None."""
    if st.st_uid != os.geteuid():
        return f"owned by uid {st.st_uid}, not by the daemon's user"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"mode {stat.S_IMODE(st.st_mode):04o} lets others change it; chmod go-w"
    return None


def trusted_file(field: str, path: Path, required: bool = True) -> list[str]:
    """Problems with a file the daemon reads its settings from (configuration, tunables)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return [f"{field}: {path}: No such file or directory"] if required else []
    except OSError as exc:
        return [f"{field}: {path}: {exc.strerror or exc}"]
    if not stat.S_ISREG(st.st_mode):
        return [f"{field}: {path}: not a regular file"]
    why = owner_and_writers(st)
    return [f"{field}: {path}: {why}"] if why else []


def state_dir(directory: Path, field: str = "server.state_dir") -> list[str]:
    """Problems with the state directory, when it exists: owned by the daemon's user and
    closed to everybody else (0700)."""
    try:
        st = directory.stat()
    except FileNotFoundError:
        return []
    except OSError as exc:
        return [f"{field}: {directory}: {exc.strerror or exc}"]
    if not stat.S_ISDIR(st.st_mode):
        return [f"{field}: {directory}: not a directory"]
    if st.st_uid != os.geteuid():
        return [f"{field}: {directory}: owned by uid {st.st_uid}, not by the daemon's user"]
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        mode = stat.S_IMODE(st.st_mode)
        return [f"{field}: {directory}: mode {mode:04o} lets others in; chmod 700"]
    return []


def database(path: Path, field: str = "server.state_dir") -> list[str]:
    """Problems with the database and its WAL files, those that exist: regular files (never
    a symbolic link, which could point anywhere), owned by the daemon's user, 0600."""
    found = []
    for suffix in DATABASE_SUFFIXES:
        each = path.with_name(path.name + suffix)
        try:
            st = each.lstat()
        except FileNotFoundError:
            continue
        except OSError as exc:
            found.append(f"{field}: {each}: {exc.strerror or exc}")
            continue
        if stat.S_ISLNK(st.st_mode):
            target = os.readlink(each)
            found.append(f"{field}: {each}: a symbolic link (to {target}); it must be a file")
        elif not stat.S_ISREG(st.st_mode):
            found.append(f"{field}: {each}: not a regular file")
        elif st.st_uid != os.geteuid():
            found.append(f"{field}: {each}: owned by uid {st.st_uid}, not by the daemon's user")
        elif st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            mode = stat.S_IMODE(st.st_mode)
            found.append(f"{field}: {each}: mode {mode:04o} lets others read it; chmod 600")
    return found
