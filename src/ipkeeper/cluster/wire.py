"""Framing and authentication of cluster messages (R25, R30).

A frame is `IPK1 | length (4 bytes) | HMAC-SHA256 (32 bytes) | JSON body`.
The length is checked against MAX_FRAME before anything else is read, the
HMAC (over magic, length and body, under the cluster key) is checked before
the body is parsed, and only then is the JSON looked at.

Every connection starts with a three-way handshake that fixes a session id
from a fresh nonce of each side (hello, hello, ack); every later frame carries
that session id and a sequence number that must grow. A frame recorded from
another connection, or replayed within one, is refused. A frame's sender must
be the peer its path belongs to.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ipkeeper.config.secrets import SecretFileError, read_secret

MAGIC = b"IPK1"
MAX_FRAME = 1 << 20
HEADER = struct.Struct("!4sI32s")
VERSION = 1


class FrameError(Exception):
    """A frame that is dropped: not ours, not authentic, too big, replayed or misrouted."""


KeyFileError = SecretFileError


def load_key(path: Path) -> bytes:
    """The cluster key (hex, or the text itself): 16 bytes at least, in a file only
    its owner can read."""
    text = read_secret(path, 16)
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = text.encode()
    if len(key) < 16:
        raise KeyFileError(f"{path}: the key must be at least 16 bytes (32 hex digits)")
    return key


def seal(key: bytes, body: dict[str, Any]) -> bytes:
    """Serialise and authenticate one frame."""
    data = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
    if len(data) > MAX_FRAME:
        raise FrameError(f"frame of {len(data)} bytes exceeds {MAX_FRAME}")
    prefix = MAGIC + struct.pack("!I", len(data))
    mac = hmac.new(key, prefix + data, hashlib.sha256).digest()
    return HEADER.pack(MAGIC, len(data), mac) + data


async def read_frame(reader: asyncio.StreamReader, key: bytes) -> dict[str, Any]:
    """Read one frame: size limit, then HMAC, then JSON. Raises FrameError or EOF errors."""
    header = await reader.readexactly(HEADER.size)
    magic, length, mac = HEADER.unpack(header)
    if magic != MAGIC:
        raise FrameError("not an ipkeeper frame (bad magic)")
    if length > MAX_FRAME:
        raise FrameError(f"oversized frame ({length} bytes > {MAX_FRAME})")
    data = await reader.readexactly(length)
    expected = hmac.new(key, magic + struct.pack("!I", length) + data, hashlib.sha256).digest()
    if not hmac.compare_digest(mac, expected):
        raise FrameError("bad HMAC (wrong cluster key or altered frame)")
    try:
        body = json.loads(data)
    except ValueError:
        raise FrameError("authentic but not JSON") from None
    if not isinstance(body, dict) or body.get("v") != VERSION:
        raise FrameError(
            f"unsupported frame version {body.get('v') if isinstance(body, dict) else '?'}"
        )
    return body


def new_nonce() -> str:
    """A fresh random nonce for a handshake."""
    return os.urandom(16).hex()


def session_id(dialer_nonce: str, listener_nonce: str) -> str:
    """The session id both ends derive from the two nonces."""
    return hashlib.sha256(f"{dialer_nonce}:{listener_nonce}".encode()).hexdigest()[:32]


@dataclass
class Session:
    """One authenticated connection's identity and sequence numbers."""

    me: str
    peer: str
    sid: str
    sent: int = 0
    received: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def frame(self, kind: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
        """The next frame body to send on this session."""
        self.sent += 1
        return {
            "v": VERSION,
            "from": self.me,
            "to": self.peer,
            "sid": self.sid,
            "seq": self.sent,
            "type": kind,
            "data": data or {},
        }

    def accept(self, body: dict[str, Any]) -> dict[str, Any]:
        """Check a received frame belongs to this session and is new; returns it."""
        if body.get("from") != self.peer or body.get("to") != self.me:
            raise FrameError(
                f"frame from {body.get('from')!r} to {body.get('to')!r} on the path to {self.peer}"
            )
        if body.get("sid") != self.sid:
            raise FrameError("frame from another session (replayed)")
        seq = body.get("seq")
        if not isinstance(seq, int) or seq <= self.received:
            raise FrameError(f"sequence {seq} not after {self.received} (replayed or reordered)")
        self.received = seq
        return body


def hello(me: str, peer: str, nonce: str, echo: str | None = None) -> dict[str, Any]:
    """A handshake frame body (sequence 0, no session yet)."""
    data: dict[str, Any] = {"nonce": nonce}
    if echo is not None:
        data["echo"] = echo
    return {
        "v": VERSION,
        "from": me,
        "to": peer,
        "sid": "",
        "seq": 0,
        "type": "hello",
        "data": data,
    }
