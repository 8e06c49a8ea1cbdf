"""The CLI's small HTTP client on a Unix socket: lengths, chunks, errors, no daemon."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from ipkeeper.cli.client import Client, DaemonError


def serve_once(path: Path, answer: bytes) -> threading.Thread:
    """A one-request server on `path` that reads the request and sends `answer`."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)
    got: list[bytes] = []

    def run() -> None:
        with listener, listener.accept()[0] as conn:
            got.append(conn.recv(65536))
            conn.sendall(answer)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.got = got  # type: ignore[attr-defined]
    return thread


def test_a_reply_by_length_and_the_request_it_answers(tmp_path: Path) -> None:
    sock = tmp_path / "api.sock"
    body = b'{"server": "s1"}'
    server = serve_once(
        sock, b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
    )
    answer = Client(str(sock), timeout=5).request("POST", "/x/a%20b", {"k": 1}, server=["s1", "s2"])
    server.join(5)
    assert answer == {"server": "s1"}
    request = server.got[0]  # type: ignore[attr-defined]
    assert request.startswith(b"POST /api/v1/x/a%20b?server=s1&server=s2 HTTP/1.1\r\n")
    assert b"Connection: close\r\n" in request and request.endswith(b'\r\n\r\n{"k": 1}')


def test_a_chunked_reply_and_an_error_naming_its_field(tmp_path: Path) -> None:
    sock = tmp_path / "api.sock"
    serve_once(
        sock,
        b'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4\r\n{"a"\r\n3\r\n: 1\r\n1\r\n}\r\n0\r\n\r\n',
    )
    assert Client(str(sock), timeout=5).request("GET", "/y") == {"a": 1}
    sock.unlink()
    error = b'{"error": {"field": "tag", "reason": "no resource \'x\'"}}'
    serve_once(
        sock, b"HTTP/1.1 404 Not Found\r\ncontent-length: %d\r\n\r\n%s" % (len(error), error)
    )
    with pytest.raises(DaemonError) as refused:
        Client(str(sock), timeout=5).request("GET", "/resources/x")
    assert (refused.value.field, refused.value.reason, refused.value.status) == (
        "tag",
        "no resource 'x'",
        404,
    )


def test_no_daemon_or_no_http_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DaemonError, match=r"no ipkeeperd answers on .*none\.sock"):
        Client(str(tmp_path / "none.sock"), timeout=5).request("GET", "/status")
    sock = tmp_path / "api.sock"
    serve_once(sock, b"SSH-2.0-OpenSSH\r\n\r\n")
    with pytest.raises(DaemonError, match="not an HTTP answer"):
        Client(str(sock), timeout=5).request("GET", "/status")


def test_the_local_path_loads_no_tls_and_a_url_takes_the_remote_one(tmp_path: Path) -> None:
    import subprocess
    import sys

    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, ipkeeper.cli.main; "
         "print(sorted(m for m in ('ssl', 'httpx', 'ipkeeper.cli.remote') if m in sys.modules))"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert loaded.strip() == "[]"

    from ipkeeper.cli.base import client_for

    local = client_for({"socket": str(tmp_path / "api.sock")})
    assert local.remote is None and local.socket == str(tmp_path / "api.sock")
    remote = client_for({"url": "https://198.18.0.11:7480", "cacert": tmp_path / "ca.crt"})
    assert remote.remote is not None and remote.remote.url == "https://198.18.0.11:7480"
    with pytest.raises(DaemonError) as refused:
        remote.request("GET", "/status")  # no token file given: refused before any request
    assert refused.value.field == "token-file"
    token = tmp_path / "token"
    token.write_text("a-token-of-sixteen-or-more\n")
    token.chmod(0o600)
    pinned = client_for(
        {"url": "https://198.18.0.11:7480", "token_file": token, "cacert": tmp_path / "no.crt"}
    )
    with pytest.raises(DaemonError) as refused:
        pinned.request("GET", "/status")  # a pin that cannot be read: named, no request made
    assert refused.value.field == "cacert" and "no.crt" in refused.value.reason
