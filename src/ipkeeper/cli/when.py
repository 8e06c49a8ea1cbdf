"""Times as people write and read them: `--since 10m`, `14:30`, `2024-05-01 14:30`;
every time printed with its date (events of several days must not look alike)."""

from __future__ import annotations

import datetime
import re
import time

import click

_SPAN = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d",
)
EXAMPLES = "10m, 2h, 1d, 1h30m, 14:30, 2024-05-01 or 2024-05-01 14:30"


def parse_since(text: str, now: float | None = None) -> float:
    """A moment as a Unix time: a span back from now (`90s`, `10m`, `1h30m`, `2d`), a time
    of day today (`14:30`, `14:30:05`; yesterday if that is still to come), or a local date
    and time (`2024-05-01`, `2024-05-01 14:30`). ValueError naming the examples otherwise."""
    now = time.time() if now is None else now
    text = text.strip()
    if text and _SPAN.sub("", text) == "":
        return now - sum(float(n) * _UNITS[u] for n, u in _SPAN.findall(text))
    local_now = datetime.datetime.fromtimestamp(now)
    for form in ("%H:%M:%S", "%H:%M"):
        try:
            clock = datetime.datetime.strptime(text, form).time()
        except ValueError:
            continue
        moment = datetime.datetime.combine(local_now.date(), clock)
        if moment > local_now:
            moment -= datetime.timedelta(days=1)
        return moment.timestamp()
    for form in _FORMATS:
        try:
            return datetime.datetime.strptime(text, form).timestamp()
        except ValueError:
            continue
    raise ValueError(f"{text!r} is not a time or a span (examples: {EXAMPLES})")


class Since(click.ParamType):
    """A --since value (see parse_since); bad input is a usage error naming the option."""

    name = "WHEN"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        """Parse the option's text into a Unix time."""
        if isinstance(value, float):
            return value
        try:
            return parse_since(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def stamp(ts: float | None, millis: bool = False) -> str:
    """A Unix time as local `YYYY-MM-DD HH:MM:SS` (with milliseconds for events); '-' for None."""
    if ts is None:
        return "-"
    moment = datetime.datetime.fromtimestamp(ts)
    return (
        moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        if millis
        else moment.strftime("%Y-%m-%d %H:%M:%S")
    )
