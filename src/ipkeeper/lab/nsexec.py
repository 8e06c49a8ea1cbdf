"""`python -m ipkeeper.lab.nsexec [--detach] NAMESPACE -- CMD...`: run CMD in a lab namespace.

The lab starts its long-running processes (daemons, echo servers) through this
entry point: it enters the namespace on its single thread and then execs, so
the PID the lab records is the PID of the command itself. With --detach the
command runs in a grandchild in its own session, whose PID is printed on
stdout, so that nobody has to reap it but init.
"""

from __future__ import annotations

import os
import sys

from ipkeeper.lab.netns import enter


def exec_in(namespace: str, argv: list[str], env: dict[str, str] | None = None) -> None:
    """Replace this process with `argv` running inside `namespace`. Never returns."""
    enter(namespace)
    if env is None:
        os.execvp(argv[0], argv)
    os.execvpe(argv[0], argv, env)


def main() -> None:
    """Entry point: [--detach] NAMESPACE -- CMD..."""
    args = sys.argv[1:]
    detach = bool(args) and args[0] == "--detach"
    if detach:
        args = args[1:]
    if len(args) < 3 or args[1] != "--":
        print(
            "usage: python -m ipkeeper.lab.nsexec [--detach] NAMESPACE -- CMD...", file=sys.stderr
        )
        raise SystemExit(2)
    if detach:
        pid = os.fork()
        if pid:
            print(pid, flush=True)
            os._exit(0)
        os.setsid()
        os.dup2(2, 1)  # the caller reads our stdout for the PID; output goes to the log
    try:
        exec_in(args[0], args[2:])
    except OSError as exc:
        print(f"error: {args[0]}: {exc.strerror or exc}", file=sys.stderr)
        raise SystemExit(127) from exc


if __name__ == "__main__":
    main()
