"""Resources and their instances (pure data)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Instance:
    """A resource as defined on this server: what a kit acts on.

    `props` are the kit's own validated parameters (for an IP resource the
    address, prefix, interface, source-address and restore-and-recover
    settings), as stored on this server.
    """

    tag: str
    kind: str
    props: Mapping[str, Any] = field(default_factory=dict)
