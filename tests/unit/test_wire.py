"""Cluster frames: size limit before HMAC, HMAC before parsing, sessions and sequences."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import struct
from pathlib import Path

import pytest

from ipkeeper.cluster import wire
from ipkeeper.cluster.keys import KeyRing

KEY = KeyRing.of(bytes.fromhex("11" * 32), 7)
OTHER = KeyRing.of(bytes(32), 7)


def read(data: bytes, key: KeyRing = KEY) -> dict:
    async def go() -> dict:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        return await wire.read_frame(reader, key)

    return asyncio.run(go())


def test_a_sealed_frame_reads_back() -> None:
    body = wire.hello("s1", "s2", "abc")
    assert read(wire.seal(KEY, body)) == body


def test_a_hello_says_which_ipkeeper_version_its_sender_runs() -> None:
    from ipkeeper import __version__

    assert wire.hello("s1", "s2", "abc")["data"]["software"] == __version__


def test_a_wrong_key_is_refused_before_parsing() -> None:
    with pytest.raises(wire.FrameError, match="bad HMAC"):
        read(wire.seal(OTHER, wire.hello("s1", "s2", "abc")))
    # Not even JSON: still refused for its HMAC, so the body was never parsed.
    garbage = b"{not json"
    prefix = wire.MAGIC + struct.pack("!HI", 7, len(garbage))
    mac = hmac.new(bytes(32), prefix + garbage, hashlib.sha256).digest()
    with pytest.raises(wire.FrameError, match="bad HMAC"):
        read(prefix + mac + garbage)


def test_an_altered_frame_is_refused() -> None:
    frame = bytearray(wire.seal(KEY, wire.hello("s1", "s2", "abc")))
    frame[-3] ^= 0x01
    with pytest.raises(wire.FrameError, match="bad HMAC"):
        read(bytes(frame))


def test_an_oversized_frame_is_refused_from_its_header_alone() -> None:
    header = wire.MAGIC + struct.pack("!HI", 7, wire.MAX_FRAME + 1) + b"\0" * 32
    with pytest.raises(wire.FrameError, match="oversized"):
        read(header)  # no body follows: it is never read


def test_bad_magic() -> None:
    with pytest.raises(wire.FrameError, match="magic"):
        read(b"HTTP" + b"\0" * 38)


def test_sessions_refuse_replays_and_strangers() -> None:
    sid = wire.session_id("a", "b")
    sender = wire.Session("s1", "s2", sid)
    receiver = wire.Session("s2", "s1", sid)
    first = sender.frame("hb")
    receiver.accept(first)
    with pytest.raises(wire.FrameError, match="not after"):
        receiver.accept(first)
    other = wire.Session("s1", "s2", wire.session_id("a", "c")).frame("hb")
    with pytest.raises(wire.FrameError, match="another session"):
        receiver.accept(other)
    forged = sender.frame("hb") | {"from": "s3"}
    with pytest.raises(wire.FrameError, match="from 's3'"):
        receiver.accept(forged)


def test_the_key_file_must_be_private(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_text("ab" * 32)
    os.chmod(path, 0o644)
    with pytest.raises(wire.KeyFileError, match="lets others read it"):
        wire.load_key(path)
    os.chmod(path, 0o600)
    assert wire.load_key(path).primary() == (0, bytes.fromhex("ab" * 32))
    path.write_text("short")
    with pytest.raises(wire.KeyFileError, match="at least 16 bytes"):
        wire.load_key(path)
    path.write_text("ab" * 10)  # 20 hex digits: long enough as text, only 10 bytes as a key
    with pytest.raises(wire.KeyFileError, match="at least 16 bytes"):
        wire.load_key(path)


def test_the_key_id_is_authenticated_and_an_unknown_one_is_named() -> None:
    frame = bytearray(wire.seal(KEY, wire.hello("s1", "s2", "abc")))
    assert struct.unpack("!H", frame[4:6]) == (7,)
    with pytest.raises(wire.FrameError, match="unknown key id 7"):
        read(bytes(frame), KeyRing.of(bytes.fromhex("11" * 32), 8))
    # Same key under another id: the id is inside the HMAC, so relabelling is refused.
    frame[4:6] = struct.pack("!H", 8)
    with pytest.raises(wire.FrameError, match="bad HMAC"):
        read(bytes(frame), KeyRing.of(bytes.fromhex("11" * 32), 8))


def test_an_unknown_key_id_leaves_the_stream_in_step() -> None:
    async def go() -> dict:
        reader = asyncio.StreamReader()
        reader.feed_data(wire.seal(OTHER, wire.hello("s1", "s2", "x")))
        reader.feed_data(wire.seal(KEY, wire.hello("s1", "s2", "y")))
        reader.feed_eof()
        with pytest.raises(wire.FrameError, match="bad HMAC"):
            await wire.read_frame(reader, KEY)
        return await wire.read_frame(reader, KEY)

    assert asyncio.run(go())["data"]["nonce"] == "y"


def test_authentic_frames_are_counted_by_key_id() -> None:
    ring = KeyRing.of(bytes.fromhex("22" * 32), 3)
    read(wire.seal(ring, wire.hello("s1", "s2", "a")), ring)
    with pytest.raises(wire.FrameError):
        read(wire.seal(OTHER, wire.hello("s1", "s2", "b")), ring)
    assert ring.received == {3: 1}
