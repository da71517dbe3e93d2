"""Durations and time windows (core layer): ``7d``, ``12h``, ``30m``, ``2w``, ``45s``.

Windows are half-open ``[start, end)`` and aligned to the unit of their duration (days start at
midnight UTC, hours on the hour), so the same window gets the same bounds in every run and in the
drift history. The current window of a data set is the one holding its latest timestamp.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from .. import clock
from ..errors import DataError, UsageError

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
UNIT_NAMES = {"s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week"}
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Duration:
    """A parsed duration: ``count`` units of ``unit`` (one of s, m, h, d, w)."""

    count: int
    unit: str

    @property
    def seconds(self) -> int:
        return self.count * UNITS[self.unit]

    @property
    def timedelta(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.seconds)

    @property
    def ns(self) -> int:
        return self.seconds * 1_000_000_000

    @property
    def align_seconds(self) -> int:
        """Windows start on a multiple of this (a week aligns to days, like a day)."""
        return UNITS["d"] if self.unit == "w" else UNITS[self.unit]

    def __str__(self) -> str:
        return f"{self.count}{self.unit}"


def parse_duration(text: Any, what: str = "window") -> Duration:
    """``"7d"`` -> Duration(7, "d").

    Raises
    ------
    UsageError
        For anything but a positive whole number followed by one of s, m, h, d, w.
    """
    match = _DURATION.match(str(text)) if text is not None else None
    if not match or int(match.group(1)) == 0:
        raise UsageError(f"The {what} '{text}' is not a duration. Use a positive whole number and a "
                         "unit: 45s, 30m, 12h, 7d or 2w.")
    return Duration(int(match.group(1)), match.group(2))


def to_utc(value: Any, what: str = "time") -> dt.datetime:
    """A timezone-aware UTC datetime from a datetime, a pandas Timestamp or an ISO-8601 string.

    Naive values are taken as UTC.
    """
    import pandas as pd

    if isinstance(value, str) and value.strip().lower() == "now":
        return clock.now()
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise UsageError(f"The {what} '{value}' is not a date or time. Use ISO-8601, e.g. "
                         "2026-01-31 or 2026-01-31T12:00:00Z.") from None
    if ts is pd.NaT:
        raise UsageError(f"The {what} '{value}' is not a date or time. Use ISO-8601, e.g. 2026-01-31.")
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.to_pydatetime()


def to_ns(value: dt.datetime) -> int:
    """Nanoseconds since the epoch of an aware datetime (exact, no float)."""
    delta = value - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def from_ns(ns: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=int(ns) // 1000)


def floor_ns(ns: int, duration: Duration) -> int:
    step = duration.align_seconds * 1_000_000_000
    return (int(ns) // step) * step


@dataclass(frozen=True)
class Window:
    """A half-open time window ``[start, end)`` in UTC."""

    start: dt.datetime
    end: dt.datetime

    @property
    def start_ns(self) -> int:
        return to_ns(self.start)

    @property
    def end_ns(self) -> int:
        return to_ns(self.end)

    def label(self) -> str:
        fmt = "%Y-%m-%d" if (self.start.hour, self.start.minute, self.end.hour, self.end.minute) == \
            (0, 0, 0, 0) else "%Y-%m-%d %H:%M"
        return f"{self.start.strftime(fmt)} .. {self.end.strftime(fmt)}"

    def to_dict(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}


def current_window(latest_ns: int, duration: Duration) -> Window:
    """The window of length `duration` that ends at the aligned boundary just after `latest_ns`."""
    end = floor_ns(latest_ns, duration) + duration.align_seconds * 1_000_000_000
    return Window(from_ns(end - duration.ns), from_ns(end))


def window_ending(until: dt.datetime, duration: Duration) -> Window:
    """The window of length `duration` ending exactly at `until` (an explicit ``--until``)."""
    end = to_ns(until)
    return Window(from_ns(end - duration.ns), from_ns(end))


def rolling_windows(since: dt.datetime, latest_ns: int, duration: Duration) -> list[Window]:
    """Consecutive windows from `since` (aligned down) until the one holding `latest_ns`."""
    start = floor_ns(to_ns(since), duration)
    if start > latest_ns:
        raise DataError(f"--since {since.isoformat()} is after the latest time in the data "
                        f"({from_ns(latest_ns).isoformat()}); nothing to compare.")
    out = []
    while start <= latest_ns:
        out.append(Window(from_ns(start), from_ns(start + duration.ns)))
        start += duration.ns
    return out
