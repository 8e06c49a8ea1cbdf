"""The cluster key ring (R30): one or more keys with ids, so a key can be rotated live.

The key file holds one key per line, `ID KEY`, where ID is 0..65535 and KEY
is hex (or, as before, the text itself) of at least 16 bytes; `#` starts a
comment. The first key is the primary: frames are sent under it. Every key in
the file is accepted from peers, by the id in the frame's header. A file
holding a bare key (the format before key ids) is that key under id 0.

Rotation without downtime, server by server (each step on every server before
the next step starts): add the new key as a second line; move it to the first
line; remove the old line. The file is re-read when it changes (stat-based,
like the tunables), so no restart is needed; a new file that cannot be used is
logged and the keys in use are kept, since losing them would cut every comm
path at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ipkeeper.config.secrets import SecretFileError, check_private
from ipkeeper.config.watched import Watched

KEY_ID_MAX = 0xFFFF
MIN_KEY_BYTES = 16

KeyFileError = SecretFileError


@dataclass(frozen=True)
class Keys:
    """The keys of one version of the key file: the primary's id first."""

    primary: int
    by_id: dict[int, bytes]


def _key_bytes(text: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError:
        return text.encode()


def parse_keys(text: str, where: str = "key file") -> Keys:
    """The keys in the text of a key file; KeyFileError names the line that is wrong."""
    entries: list[tuple[int, bytes, int, bool]] = []  # (id, key, line number, without an id)
    for number, raw in enumerate(text.splitlines(), start=1):
        fields = raw.split("#", 1)[0].split()
        if not fields:
            continue
        if len(fields) == 1:
            entries.append((0, _key_bytes(fields[0]), number, True))
            continue
        if len(fields) != 2 or not fields[0].isdigit() or int(fields[0]) > KEY_ID_MAX:
            raise KeyFileError(f"{where}: line {number}: expected 'ID KEY' with ID 0..{KEY_ID_MAX}")
        entries.append((int(fields[0]), _key_bytes(fields[1]), number, False))
    if not entries:
        raise KeyFileError(f"{where}: no key in it")
    by_id: dict[int, bytes] = {}
    for key_id, key, number, bare in entries:
        if bare and len(entries) > 1:
            raise KeyFileError(
                f"{where}: line {number}: a key without an id is only allowed alone in the file"
            )
        if key_id in by_id:
            raise KeyFileError(f"{where}: line {number}: key id {key_id} appears twice")
        if len(key) < MIN_KEY_BYTES:
            raise KeyFileError(
                f"{where}: line {number}: the key must be at least {MIN_KEY_BYTES} bytes "
                f"({2 * MIN_KEY_BYTES} hex digits)"
            )
        by_id[key_id] = key
    return Keys(primary=entries[0][0], by_id=by_id)


def read_key_file(path: Path) -> Keys:
    """The keys of the file at `path`: private to the daemon's user or refused."""
    check_private(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"{path}: {getattr(exc, 'strerror', None) or exc}") from None
    return parse_keys(text, str(path))


class KeyRing:
    """The keys this server sends under and accepts, kept in step with the key file."""

    def __init__(self, source: Watched[Keys] | Keys) -> None:
        self._source = source
        self.received: dict[int, int] = {}  # authentic frames received under each key id

    def note_received(self, key_id: int) -> None:
        """Count an authentic frame received under `key_id` (an old key may be retired once
        no peer sends under it any more)."""
        self.received[key_id] = self.received.get(key_id, 0) + 1

    @classmethod
    def load(cls, path: Path, on_error: Callable[[str], None] | None = None) -> KeyRing:
        """The ring for the key file at `path` (raises KeyFileError if it cannot be used now;
        later bad versions are given to `on_error` and the keys in use kept)."""
        return cls(Watched(path, read_key_file, on_error))

    @classmethod
    def of(cls, key: bytes, key_id: int = 0) -> KeyRing:
        """A fixed ring of one key (tests, tools)."""
        return cls(Keys(primary=key_id, by_id={key_id: key}))

    def _keys(self) -> Keys:
        return self._source.get() if isinstance(self._source, Watched) else self._source

    def primary(self) -> tuple[int, bytes]:
        """(id, key) to send under."""
        keys = self._keys()
        return keys.primary, keys.by_id[keys.primary]

    def lookup(self, key_id: int) -> bytes | None:
        """The key with id `key_id`, or None if the file does not hold it (now)."""
        return self._keys().by_id.get(key_id)

    def ids(self) -> list[int]:
        """Every key id accepted now, the primary first."""
        keys = self._keys()
        return [keys.primary, *sorted(i for i in keys.by_id if i != keys.primary)]

    @property
    def error(self) -> str | None:
        """Why the key file as it is now is not the one in use, or None."""
        return self._source.error if isinstance(self._source, Watched) else None
