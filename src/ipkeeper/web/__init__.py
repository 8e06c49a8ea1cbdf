"""The web GUI (R28): static files served by every daemon; it uses the public API only."""

from pathlib import Path

STATIC = Path(__file__).parent / "static"
