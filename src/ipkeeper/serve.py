"""Serving the API: uvicorn without its own signal handling, and the TCP listener that a
reload can move to another address, or give other tokens or another TLS certificate,
without stopping the daemon or its Unix socket."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Iterator
from typing import Any

import uvicorn
from fastapi import FastAPI
from starlette.types import ASGIApp

from ipkeeper.api.surface import Surface

log = logging.getLogger("ipkeeper.serve")
IP_FREEBIND = 15
Address = tuple[str, int]


class ApiServer(uvicorn.Server):
    """uvicorn without its own signal handling: the daemon decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Install nothing."""
        yield

    async def main_loop(self) -> None:
        """uvicorn's housekeeping once a second, not ten times (an idle daemon stays idle)."""
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 10) % 864000
            await asyncio.sleep(1.0)


def api_server(app: ASGIApp, tls: ssl.SSLContext | None = None) -> ApiServer:
    """A uvicorn server for `app`, speaking TLS with `tls` if given (quiet: the daemon logs
    what matters)."""
    factory = (lambda _config, _default: tls) if tls is not None else None
    return ApiServer(
        uvicorn.Config(
            app,
            log_level="warning",
            lifespan="off",
            access_log=False,
            timeout_graceful_shutdown=3,
            ssl_context_factory=factory,
        )
    )


def tcp_listener(host: str, port: int) -> socket.socket:
    """A TCP socket for the API; it may bind an address not (yet) configured (IP_FREEBIND)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


class TcpApi:
    """The API over TCP as api/surface.py secures it (TLS, tokens and roles, the failure
    count), on at most one address at a time; and the surface in force, which `status`
    shows (`app.state.surface`).

    `rebind` binds a new address first (so a bad one is refused with the old
    listener untouched), then retires the old listener; requests in progress
    on it get a few seconds to finish. New token files or a new certificate on
    the same address get a new server on the same listening socket (a copy of
    it: the old server closes its own), so no connection is refused meanwhile.
    The task running `run` lives as long as the daemon, whatever the address.
    """

    def __init__(self, app: FastAPI, surface: Surface) -> None:
        self.app = app
        self.surface = surface
        self.where: Address | None = None
        self._sock: socket.socket | None = None
        self._next: tuple[ApiServer, socket.socket] | None = None
        self._changed = asyncio.Event()
        app.state.surface = surface

    def rebind(self, surface: Surface) -> None:
        """Serve as `surface` says from now on (no TCP API if it has no `listen`).

        Raises OSError, with nothing changed, when a new address cannot be bound.
        When the address, the token files and the certificate are those in force,
        the listener is left as it is.
        """
        where = surface.api.tcp_address()
        if (
            where is not None
            and where == self.where
            and surface.listener() == self.surface.listener()
        ):
            # The listener keeps the credentials it checks; the status shows those.
            surface.credentials, surface.context = self.surface.credentials, self.surface.context
            self.surface = self.app.state.surface = surface
            return
        if where is None:
            sock = None
        elif where == self.where and self._sock is not None:
            sock = self._sock.dup()
        else:
            sock = tcp_listener(*where)
        if self._next is not None:  # asked for by a rebind that `run` has not served yet
            self._next[1].close()
        self.where, self._sock = where, sock
        self._next = (api_server(surface.remote(self.app), surface.context), sock) if sock else None
        self.surface = self.app.state.surface = surface
        self._changed.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Serve whatever address is current until `stop`."""
        current: Serving | None = None
        retiring: set[asyncio.Task[None]] = set()
        stopping = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                if self._changed.is_set():
                    self._changed.clear()
                    if current is not None:
                        retiring.add(current.retire())
                    current = Serving(*self._next) if self._next is not None else None
                    self._next = None
                changed = asyncio.create_task(self._changed.wait())
                waiting: set[asyncio.Future[Any]] = {stopping, changed}
                if current is not None:
                    waiting.add(current.task)
                await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                changed.cancel()
                retiring = {t for t in retiring if not t.done()}
                if current is not None and current.task.done() and not stop.is_set():
                    current.task.result()  # raises what killed it, for the daemon to see
                    raise RuntimeError(f"the API on {self.where} stopped on its own")
        finally:
            stopping.cancel()
            if current is not None:
                retiring.add(current.retire())
            if retiring:
                await asyncio.wait(retiring, timeout=5)


class Serving:
    """One uvicorn server on one socket, and the task running it."""

    def __init__(self, server: ApiServer, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock
        self.task = asyncio.create_task(server.serve(sockets=[sock]), name="api tcp")

    def retire(self) -> asyncio.Task[None]:
        """Stop taking connections; the task ends once requests in progress are done."""
        self.server.should_exit = True
        for listening in getattr(self.server, "servers", []):
            listening.close()  # at once: uvicorn itself looks at should_exit once a second
        self.task.add_done_callback(lambda _task: self.sock.close())
        return self.task
