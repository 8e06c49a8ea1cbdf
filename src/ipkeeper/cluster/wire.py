"""Framing and authentication of cluster messages (R25, R30).

A frame is `IPK2 | key id (2 bytes) | length (4 bytes) | HMAC-SHA256 (32 bytes) |
JSON body`. The length is checked against MAX_FRAME before anything else is
read, the HMAC (over magic, key id, length and body, under the key with that
id in the key ring of cluster/keys.py) is checked before the body is parsed,
and only then is the JSON looked at. Frames are sent under the ring's primary
key; any key of the ring is accepted, so a key can be rotated live.

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

from ipkeeper.cluster.keys import KeyRing
from ipkeeper.config.secrets import SecretFileError

MAGIC = b"IPK2"
MAX_FRAME = 1 << 20
HEADER = struct.Struct("!4sHI32s")
VERSION = 1


class FrameError(Exception):
    """A frame that is dropped: not ours, not authentic, too big, replayed or misrouted."""


KeyFileError = SecretFileError


def load_key(path: Path) -> KeyRing:
    """The cluster key ring of the key file at `path` (cluster/keys.py), re-read when
    the file changes."""
    return KeyRing.load(path)


def _mac(key: bytes, key_id: int, data: bytes) -> bytes:
    prefix = MAGIC + struct.pack("!HI", key_id, len(data))
    return hmac.new(key, prefix + data, hashlib.sha256).digest()


def seal(keys: KeyRing, body: dict[str, Any]) -> bytes:
    """Serialise and authenticate one frame under the ring's primary key."""
    data = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
    if len(data) > MAX_FRAME:
        raise FrameError(f"frame of {len(data)} bytes exceeds {MAX_FRAME}")
    key_id, key = keys.primary()
    return HEADER.pack(MAGIC, key_id, len(data), _mac(key, key_id, data)) + data


def check_header(header: bytes) -> tuple[int, int, bytes]:
    """(key id, length, MAC) of a frame header, once its magic and length are acceptable."""
    magic, key_id, length, mac = HEADER.unpack(header)
    if magic != MAGIC:
        raise FrameError("not an ipkeeper frame (bad magic)")
    if length > MAX_FRAME:
        raise FrameError(f"oversized frame ({length} bytes > {MAX_FRAME})")
    return key_id, length, mac


def open_frame(keys: KeyRing, key_id: int, mac: bytes, data: bytes) -> dict[str, Any]:
    """The body of an authentic frame: HMAC under key `key_id`, then JSON, then version."""
    key = keys.lookup(key_id)
    if key is None:
        raise FrameError(f"unknown key id {key_id} (not in this server's cluster key file)")
    if not hmac.compare_digest(mac, _mac(key, key_id, data)):
        raise FrameError("bad HMAC (wrong cluster key or altered frame)")
    keys.note_received(key_id)
    try:
        body = json.loads(data)
    except ValueError:
        raise FrameError("authentic but not JSON") from None
    if not isinstance(body, dict) or body.get("v") != VERSION:
        raise FrameError(
            f"unsupported frame version {body.get('v') if isinstance(body, dict) else '?'}"
        )
    return body


async def read_frame(reader: asyncio.StreamReader, keys: KeyRing) -> dict[str, Any]:
    """Read one frame: size limit, then HMAC, then JSON. Raises FrameError or EOF errors.

    The body is read even under an unknown key id, so the stream stays in step.
    """
    key_id, length, mac = check_header(await reader.readexactly(HEADER.size))
    data = await reader.readexactly(length)
    return open_frame(keys, key_id, mac, data)


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
