"""Framing and authentication of cluster messages (R25, R30).

A frame is `IPK2 | key id (2 bytes) | length (4 bytes) | HMAC-SHA256 (32 bytes) |
JSON body`. The length is checked against MAX_FRAME before anything else is
read, the HMAC (over magic, key id, length and body, under the key with that
id in the key ring of cluster/keys.py) is checked before the body is parsed,
and only then is the JSON looked at. Frames are sent under the ring's primary
key; any key of the ring is accepted, so a key can be rotated live.

Every connection starts with a three-way handshake that fixes a session id
from a fresh nonce of each side (hello, hello, ack); every later frame carries
that session id and a sequence number that must grow; each hello says which
ipkeeper version its sender runs. A frame recorded from
another connection, or replayed within one, is refused. A frame's sender must
be the peer its path belongs to.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import ipaddress
import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ipkeeper import __version__
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
    """A handshake frame body (sequence 0, no session yet), with the sender's ipkeeper
    version (`software`): every server of a cluster should run the same one."""
    data: dict[str, Any] = {"nonce": nonce, "software": __version__}
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


# -- heartbeat datagrams ------------------------------------------------------------
#
# A heartbeat is one UDP datagram per path and interval, fixed layout, so that
# building and checking one costs a few microseconds and no parsing happens
# before the HMAC has been checked:
#
#   IPH2 | key id u16 | flags u8 | reserved u8 | interval ms u16 | boot u64 | seq u64 |
#   echo boot u64 | echo u64 | held µs u32 |
#   sender address 16 | receiver address 16 | sender name 64 | receiver name 64 |
#   HMAC-SHA256 32
#
# `seq` grows by one per datagram on each path within one run (`boot`) of the
# sender; `echo boot` and `echo` are the run and the last `seq` the sender
# received from the receiver on this path, and `held` how long ago: a
# heartbeat proves its sender alive only when it echoes one of the
# receiver's own recent heartbeats, so a datagram recorded earlier (even from
# another run) proves nothing. Addresses and names (the "route", the same in
# every heartbeat of a path) are inside the authenticated part: a datagram
# moved to another path, or sent by another peer, is refused.

BEAT_MAGIC = b"IPH2"
BEAT_HEAD = struct.Struct("!4sHBBHQQQQI")
BEAT_ROUTE = struct.Struct("!16s16s64s64s")
BEAT_SIZE = BEAT_HEAD.size + BEAT_ROUTE.size + 32
FLAG_STUCK = 0x01  # the sender's main loop has not turned for longer than its stall limit
FLAG_READY = 0x02  # the sender has reconciled its store with its kernel


class BeatKey:
    """A cluster key made ready for heartbeats: HMAC-SHA256 (RFC 2104) with the keyed
    inner and outer hash states computed once, so each datagram costs two short hashes."""

    def __init__(self, key: bytes, key_id: int = 0) -> None:
        self.key_id = key_id
        self._key = key
        block = (hashlib.sha256(key).digest() if len(key) > 64 else key).ljust(64, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))

    def mac(self, data: bytes) -> bytes:
        """HMAC-SHA256 of `data` under this key."""
        inner = self._inner.copy()
        inner.update(data)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


class BeatKeys:
    """The cluster key ring made ready for heartbeats: a BeatKey per key id.

    The ring follows its key file (a stat per look); the heartbeat thread must
    not wait on a file, so it takes a snapshot here at most once a `refresh`
    interval and sends and checks against the snapshot in between."""

    def __init__(self, ring: KeyRing, refresh: float = 1.0) -> None:
        self.ring = ring
        self.refresh = refresh
        self._ready: dict[tuple[int, bytes], BeatKey] = {}
        self._sending: BeatKey | None = None
        self._accepted: dict[int, BeatKey] = {}
        self._taken_at = -1e18
        self.update(0.0)

    def update(self, now: float) -> None:
        """Take the ring's keys again if the last snapshot is `refresh` old (monotonic `now`)."""
        if now - self._taken_at < self.refresh:
            return
        self._taken_at = now
        accepted: dict[int, BeatKey] = {}
        for key_id in self.ring.ids():
            key = self.ring.lookup(key_id)
            if key is not None:
                ready = self._ready.get((key_id, key)) or BeatKey(key, key_id)
                self._ready[(key_id, key)] = ready
                accepted[key_id] = ready
        key_id, key = self.ring.primary()
        self._sending = accepted.get(key_id) or BeatKey(key, key_id)
        self._accepted = accepted
        if len(self._ready) > 64:  # keys retired long ago
            self._ready = {(i, k._key): k for i, k in accepted.items()}

    def sending(self) -> BeatKey:
        """The key to seal heartbeats under (the ring's primary)."""
        assert self._sending is not None
        return self._sending

    def receiving(self, key_id: int) -> BeatKey | None:
        """The key with `key_id`, or None when the ring does not hold it."""
        return self._accepted.get(key_id)


@functools.lru_cache(maxsize=256)
def _packed_address(address: str) -> bytes:
    ip = ipaddress.ip_address(address)
    if ip.version == 4:
        return ipaddress.IPv6Address(f"::ffff:{ip}").packed
    return ip.packed


@functools.lru_cache(maxsize=256)
def _unpacked_address(data: bytes) -> str:
    ip = ipaddress.IPv6Address(data)
    return str(ip.ipv4_mapped) if ip.ipv4_mapped is not None else str(ip)


def _name(data: bytes) -> str:
    return data.rstrip(b"\0").decode("ascii", "replace")


def beat_route(sender: str, receiver: str, source: str, destination: str) -> bytes:
    """The authenticated "route" part of every heartbeat on one path, made once per path."""
    return BEAT_ROUTE.pack(
        _packed_address(source),
        _packed_address(destination),
        sender.encode()[:64],
        receiver.encode()[:64],
    )


def seal_beat_fields(
    key: BeatKey,
    route: bytes,
    flags: int,
    interval: float,
    boot: int,
    seq: int,
    echo_boot: int,
    echo: int,
    held: float,
) -> bytes:
    """One heartbeat datagram from its changing fields and its path's `route`."""
    body = (
        BEAT_HEAD.pack(
            BEAT_MAGIC,
            key.key_id,
            flags,
            0,
            min(int(interval * 1000), 65535),
            boot,
            seq,
            echo_boot,
            echo,
            min(int(held * 1e6), 0xFFFFFFFF),
        )
        + route
    )
    return body + key.mac(body)


def open_beat_fields(keys: BeatKeys | BeatKey, data: bytes) -> tuple[tuple[int, ...], bytes]:
    """Check a heartbeat (size, magic, key id, HMAC); its changing fields (flags,
    interval ms, boot, seq, echo boot, echo, held µs) and its route. FrameError when
    not authentic."""
    if len(data) != BEAT_SIZE:
        raise FrameError(f"heartbeat of {len(data)} bytes (expected {BEAT_SIZE})")
    body, mac = data[:-32], data[-32:]
    if body[:4] != BEAT_MAGIC:
        raise FrameError("not an ipkeeper heartbeat (bad magic)")
    head = BEAT_HEAD.unpack_from(body)
    key = keys.receiving(head[1]) if isinstance(keys, BeatKeys) else keys
    if key is None or key.key_id != head[1]:
        raise FrameError(f"heartbeat under unknown key id {head[1]} (not in the cluster key file)")
    if not hmac.compare_digest(mac, key.mac(body)):
        raise FrameError("bad HMAC on a heartbeat (wrong cluster key or altered datagram)")
    if isinstance(keys, BeatKeys):
        keys.ring.note_received(head[1])
    return head[2:3] + head[4:], body[BEAT_HEAD.size :]


def describe_route(route: bytes) -> tuple[str, str, str, str]:
    """(sender, receiver, source, destination) of a heartbeat's route, for refusals."""
    src, dst, sender, receiver = BEAT_ROUTE.unpack(route)
    return _name(sender), _name(receiver), _unpacked_address(src), _unpacked_address(dst)
