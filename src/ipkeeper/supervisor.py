"""What the service manager and the administrator's signals see of the daemon.

SIGTERM and SIGINT stop it (resources stay as they are), SIGHUP reloads the
configuration (`reload.py`); each is logged and recorded as an event. Under
systemd (`Type=notify`) it says READY=1 once the daemon has heard from its
peers and reconciled, keeps a one-line STATUS= current, and pings the
watchdog from the main loop (`sdnotify.py`).
"""

from __future__ import annotations

import asyncio
import signal

from ipkeeper.engine.core import Engine
from ipkeeper.reload import Reloader
from ipkeeper.sdnotify import Notifier


def status_line(engine: Engine) -> str:
    """One line for `systemctl status`: peers, comm paths, what is in service here, quorum."""
    servers = engine.peers.servers()
    peers = [s for s in servers if not s.get("local")]
    paths = [p for s in peers for p in s["comm_paths"]]
    here = 0
    for rec in engine.repo.resources():
        st = engine.repo.local_state(rec.id)
        if st is not None and st.state.in_service:
            here += 1
    quorum = "yes" if engine.peers.quorum().get("has_quorum", True) else "NO"
    return (
        f"{engine.server}: {sum(1 for s in peers if s['alive'])}/{len(peers)} peers alive, "
        f"{sum(1 for p in paths if p['state'] == 'up')}/{len(paths)} comm paths up, "
        f"{here} resource(s) in service here, quorum {quorum}"
    )


class Supervisor:
    """Signals, reloads and systemd notifications for one running daemon."""

    def __init__(self, engine: Engine, notifier: Notifier) -> None:
        self.engine = engine
        self.notifier = notifier
        self.reloader: Reloader | None = None  # set once ready
        self.stop = asyncio.Event()
        self._reload_asked = False
        self._tasks: set[asyncio.Task[None]] = set()

    def install(self, loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
        """Handle SIGTERM, SIGINT (stop) and SIGHUP (reload) on `loop`."""
        self.stop = stop
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop_signal, sig)
        loop.add_signal_handler(signal.SIGHUP, self._reload_signal)

    def _stop_signal(self, sig: signal.Signals) -> None:
        if not self.stop.is_set():
            self.engine.events.add("daemon", f"received {sig.name}: stopping")
            self.notifier.stopping(f"{self.engine.server}: stopping ({sig.name})")
        self.stop.set()

    def _reload_signal(self) -> None:
        if self.reloader is None:
            self.engine.events.add("daemon", "received SIGHUP: reloading once started")
            self._reload_asked = True
            return
        self.engine.events.add("daemon", f"received SIGHUP: reloading {self.reloader.path}")
        self._start_reload(self.reloader)

    def _start_reload(self, reloader: Reloader) -> None:
        task = asyncio.get_running_loop().create_task(self._reload(reloader))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reload(self, reloader: Reloader) -> None:
        self.notifier.reloading()
        try:
            await reloader.reload()
        finally:
            self.notifier.reloaded(status_line(self.engine))

    def ready(self, reloader: Reloader) -> None:
        """The daemon has heard from its peers and reconciled: tell systemd; from now
        on SIGHUP reloads through `reloader` (one asked for during start-up runs now)."""
        self.reloader = reloader
        self.notifier.ready(status_line(self.engine))
        if self._reload_asked:
            self._start_reload(reloader)

    async def run(self, stop: asyncio.Event) -> None:
        """Watchdog pings and status updates until `stop`."""
        await self.notifier.keep_alive(stop, lambda: status_line(self.engine))

    def stopping(self, why: str) -> None:
        """Tell systemd the daemon is on its way out."""
        self.notifier.stopping(f"{self.engine.server}: {why}")
