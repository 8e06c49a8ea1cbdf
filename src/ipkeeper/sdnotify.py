"""systemd's notify protocol (sd_notify(3)), without libsystemd: a datagram to $NOTIFY_SOCKET.

`Type=notify` units learn from it when the daemon is ready (READY=1), what it
is doing (STATUS=), that it is reloading (RELOADING=1) or stopping
(STOPPING=1), and that its main loop still turns (WATCHDOG=1, at half of
WatchdogSec=; systemd restarts a daemon whose pings stop). The variables are
taken out of the environment when read, so that the commands the daemon runs
(application kit scripts) neither inherit them nor speak for the daemon.
Outside systemd every call is a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, MutableMapping

log = logging.getLogger("ipkeeper.sdnotify")


class Notifier:
    """Sends notifications to the service manager, if there is one."""

    def __init__(self, environ: MutableMapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        where = env.pop("NOTIFY_SOCKET", "")
        usec = env.pop("WATCHDOG_USEC", "")
        watchdog_pid = env.pop("WATCHDOG_PID", "")
        self.address: str | None = None
        if where.startswith("@"):
            self.address = "\0" + where[1:]  # an abstract socket
        elif where.startswith("/"):
            self.address = where
        self.watchdog_seconds: float | None = None
        if usec.isdigit() and int(usec) > 0 and watchdog_pid in ("", str(os.getpid())):
            self.watchdog_seconds = int(usec) / 1e6
        self._sock: socket.socket | None = None

    @property
    def enabled(self) -> bool:
        """True when a service manager listens."""
        return self.address is not None

    def send(self, **fields: str) -> bool:
        """Send KEY=VALUE lines in one datagram; False when nobody listens or it failed."""
        if self.address is None:
            return False
        message = "\n".join(f"{key}={value}" for key, value in fields.items()).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto(message, self.address)
        except OSError as exc:
            log.warning("cannot notify the service manager at %s: %s", self.address, exc)
            return False
        return True

    def ready(self, status: str) -> bool:
        """The daemon is up: systemd finishes `systemctl start` now."""
        return self.send(READY="1", STATUS=status)

    def status(self, status: str) -> bool:
        """A one-line summary `systemctl status` shows."""
        return self.send(STATUS=status)

    def reloading(self) -> bool:
        """A reload started; `ready()` (or `reloaded()`) ends it."""
        return self.send(
            RELOADING="1", MONOTONIC_USEC=str(time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000)
        )

    def reloaded(self, status: str) -> bool:
        """The reload is over (applied or refused)."""
        return self.ready(status)

    def stopping(self, status: str) -> bool:
        """The daemon is stopping."""
        return self.send(STOPPING="1", STATUS=status)

    async def keep_alive(self, stop: asyncio.Event, summary: Callable[[], str]) -> None:
        """Until `stop`: WATCHDOG=1 at half the watchdog period, and the STATUS line
        whenever it changes. Runs on the main loop, so a hung loop stops the pings."""
        if not self.enabled:
            await stop.wait()
            return
        period = self.watchdog_seconds / 2 if self.watchdog_seconds else 5.0
        period = min(period, 5.0)  # the status line too is refreshed at least every 5 s
        last = ""
        while not stop.is_set():
            fields: dict[str, str] = {}
            if self.watchdog_seconds:
                fields["WATCHDOG"] = "1"
            now = summary()
            if now != last:
                fields["STATUS"] = now
                last = now
            if fields:
                self.send(**fields)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), period)

    def close(self) -> None:
        """Close the socket."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
