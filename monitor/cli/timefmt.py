"""Event times as people and payloads read them: RFC 3339, UTC, milliseconds.

Every formatter here is total. Event times come from producers, and a store
may hold one that no calendar date represents (``ts`` = 1e18 is accepted as
epoch seconds, but is past the year 9999): it shows as ``out of range (1e+18)``
instead of failing the listing, the report or the notification it is part of.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime


def moment(ts: float) -> datetime | None:
    """Epoch seconds as an aware UTC datetime; None when no datetime represents them."""
    try:
        seconds = float(ts)
        return datetime.fromtimestamp(seconds, tz=UTC) if math.isfinite(seconds) else None
    except (TypeError, OverflowError, OSError, ValueError):
        return None


def out_of_range(ts: object) -> str:
    """How an unrepresentable time shows: ``out of range (1e+18)``."""
    try:
        shown = f"{float(ts):.6g}"  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        shown = "not a number" if not isinstance(ts, int) else "too large"
    return f"out of range ({shown})"


def iso(ts: float) -> str:
    """Epoch seconds as ``2026-11-01T00:38:43.750Z``, or ``out of range (…)``."""
    when = moment(ts)
    if when is None:
        return out_of_range(ts)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def format_time(ts: float | None) -> str:
    """Epoch seconds as ``2026-11-01 00:38:43`` (UTC) for tables; "-" when absent."""
    if ts is None:
        return "-"
    when = moment(ts)
    if when is None:
        return out_of_range(ts)
    return when.isoformat(sep=" ", timespec="seconds").removesuffix("+00:00")


def clock(ts: float) -> str:
    """The time of day, ``00:38:43``, of epoch seconds; ``out of range (…)`` when none."""
    when = moment(ts)
    return out_of_range(ts) if when is None else when.strftime("%H:%M:%S")
