"""The cluster key ring: key ids, a primary for sending, re-read when the file changes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ipkeeper.cluster.keys import KeyFileError, KeyRing, parse_keys

A = "aa" * 32
B = "bb" * 32


def write(path: Path, text: str) -> None:
    """Replace the file as an administrator should: a new file renamed over the old one."""
    new = path.with_suffix(".new")
    new.write_text(text)
    os.chmod(new, 0o600)
    new.rename(path)


def test_the_first_key_is_the_primary_and_every_key_is_accepted() -> None:
    keys = parse_keys(f"# rotation in progress\n2 {B}\n1 {A}   # the old one\n\n")
    assert keys.primary == 2
    assert keys.by_id == {2: bytes.fromhex(B), 1: bytes.fromhex(A)}


def test_a_bare_key_is_key_id_0_as_before_key_ids() -> None:
    keys = parse_keys(A + "\n")
    assert (keys.primary, keys.by_id) == (0, {0: bytes.fromhex(A)})
    assert parse_keys("not-hex-but-long-enough").by_id[0] == b"not-hex-but-long-enough"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "no key in it"),
        ("# only a comment\n", "no key in it"),
        (f"1 {A}\n1 {B}\n", "line 2: key id 1 appears twice"),
        (f"1 {A}\n{B}\n", "line 2: a key without an id is only allowed alone"),
        (f"70000 {A}\n", "line 1: expected 'ID KEY' with ID 0..65535"),
        (f"one {A}\n", "line 1: expected 'ID KEY'"),
        (f"1 {A} extra\n", "line 1: expected 'ID KEY'"),
        ("1 abcd\n", "line 1: the key must be at least 16 bytes"),
    ],
)
def test_a_bad_key_file_names_the_line(text: str, error: str) -> None:
    with pytest.raises(KeyFileError, match=error):
        parse_keys(text, "cluster.key")


def test_the_ring_follows_the_file_without_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "cluster.key"
    write(path, f"1 {A}\n")
    refused: list[str] = []
    ring = KeyRing.load(path, on_error=refused.append)
    assert ring.primary() == (1, bytes.fromhex(A)) and ring.lookup(2) is None

    write(path, f"1 {A}\n2 {B}\n")  # step 1: the new key accepted, not yet used
    assert ring.primary()[0] == 1 and ring.lookup(2) == bytes.fromhex(B)
    write(path, f"2 {B}\n1 {A}\n")  # step 2: sent under the new key
    assert ring.primary() == (2, bytes.fromhex(B)) and ring.ids() == [2, 1]
    write(path, f"2 {B}\n")  # step 3: the old key retired
    assert ring.lookup(1) is None and ring.ids() == [2]
    assert refused == [] and ring.error is None


def test_an_unusable_new_file_keeps_the_keys_in_use(tmp_path: Path) -> None:
    path = tmp_path / "cluster.key"
    write(path, f"1 {A}\n")
    refused: list[str] = []
    ring = KeyRing.load(path, on_error=refused.append)
    write(path, "1 short\n")
    assert ring.primary() == (1, bytes.fromhex(A))
    assert ring.error is not None and "at least 16 bytes" in ring.error
    os.chmod(path, 0o644)  # a chmod alone is noticed too
    assert ring.lookup(1) == bytes.fromhex(A)
    assert len(refused) == 2 and "lets others read it" in refused[1]
    write(path, f"3 {B}\n")
    assert ring.primary() == (3, bytes.fromhex(B)) and ring.error is None


def test_a_key_file_others_can_read_is_refused_at_start(tmp_path: Path) -> None:
    path = tmp_path / "cluster.key"
    path.write_text(f"1 {A}\n")
    os.chmod(path, 0o640)
    with pytest.raises(KeyFileError, match="lets others read it"):
        KeyRing.load(path)
