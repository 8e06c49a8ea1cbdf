"""Serving the API: uvicorn without its own signal handling, and the TCP listener that a
reload can move to another address without stopping the daemon or its Unix socket."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from ipkeeper.api.auth import BearerAuth

log = logging.getLogger("ipkeeper.serve")
IP_FREEBIND = 15
Address = tuple[str, int]


class ApiServer(uvicorn.Server):
    """uvicorn without its own signal handling: the daemon decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Install nothing."""
        yield


def api_server(app: ASGIApp) -> ApiServer:
    """A uvicorn server for `app` (quiet: the daemon logs what matters)."""
    return ApiServer(
        uvicorn.Config(
            app, log_level="warning", lifespan="off", access_log=False, timeout_graceful_shutdown=3
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
    """The API over TCP behind the bearer token, on at most one address at a time.

    `rebind` binds the new address first (so a bad one is refused with the old
    listener untouched), then retires the old listener; requests in progress
    on it get a few seconds to finish. The task running `run` lives as long
    as the daemon, whatever the address.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.where: Address | None = None
        self.auth: BearerAuth | None = None
        self._next: tuple[ApiServer, socket.socket] | None = None
        self._changed = asyncio.Event()

    def rebind(self, where: Address | None, token: str | None) -> None:
        """Serve on `where` with `token` from now on (None: no TCP API).

        Raises OSError, with nothing changed, when the address cannot be bound.
        The same address with a new token only changes the token.
        """
        if where is not None and where == self.where and self.auth is not None:
            assert token is not None
            self.auth.token = token.encode()
            return
        if where is None:
            self.where, self.auth, self._next = None, None, None
        else:
            assert token is not None
            sock = tcp_listener(*where)
            auth = BearerAuth(self.app, token)
            self.where, self.auth, self._next = where, auth, (api_server(auth), sock)
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
        self.task.add_done_callback(lambda _task: self.sock.close())
        return self.task
