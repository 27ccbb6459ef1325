"""Each signal's history around an incident, read from ``signal_history``.

A windowed test writes one ``tested`` row per window, so a long replay holds
millions of them: the rows of one line are counted first and read with an even
stride, at most ``MAX_POINTS`` per line, by SQLite itself (nothing unbounded
reaches memory). The changes (fired, escalated, resolved) are few, but bounded
too. ``confirmed`` rows only repeat that a signal still fires: the line shows it.
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass, field

import orjson

MAX_POINTS = 2000  # per line
MAX_CHANGES = 500  # per signal
MIN_MARGIN = 600.0  # seconds of event time shown before and after an incident at least
CHANGES = ("fired", "escalated", "resolved")


@dataclass(frozen=True)
class HistoryPoint:
    ts: float
    state: str
    statistic: float | None
    p_value: float | None
    threshold: float | None


@dataclass(frozen=True)
class Change:
    ts: float
    change: str  # fired, escalated or resolved
    severity: str


@dataclass(frozen=True)
class SignalHistory:
    detector: str
    signal: str
    points: list[HistoryPoint] = field(default_factory=list)  # tested rows, downsampled
    tested: int = 0  # tested rows in the range before downsampling
    changes: list[Change] = field(default_factory=list)
    firing_before: bool = False  # already firing where the range starts


def incident_range(
    first: float, last: float, resolved: float | None, window_starts: list[float]
) -> tuple[float, float] | None:
    """The event time shown for an incident: it, with a margin before and after.

    None where the times are not finite numbers (a hostile producer's).
    """
    start = min([first, *window_starts])
    end = max(last, resolved if resolved is not None else last)
    margin = max(end - start, MIN_MARGIN)
    lo, hi = start - margin, end + margin
    if not all(math.isfinite(v) for v in (start, end, margin, lo, hi)) or hi <= lo:
        return None
    return lo, hi


def split_signal(name: str) -> tuple[str, str]:
    """``detector:signal`` of an incident's signal list (the signal may hold colons)."""
    detector, _, signal = name.partition(":")
    return detector, signal


def read_history(
    conn: sqlite3.Connection, model: str, signals: list[str], span: tuple[float, float] | None
) -> dict[str, SignalHistory]:
    if span is None:
        return {}
    return {name: _one(conn, model, *split_signal(name), span) for name in signals}


def _one(
    conn: sqlite3.Connection, model: str, detector: str, signal: str, span: tuple[float, float]
) -> SignalHistory:
    lo, hi = span
    key = [model, detector, signal]
    where = "model = ? AND detector = ? AND signal = ? AND event_ts BETWEEN ? AND ?"
    tested = int(
        conn.execute(
            f"SELECT count(*) FROM signal_history WHERE {where} AND change = 'tested'",
            [*key, lo, hi],
        ).fetchone()[0]
    )
    stride = max(1, math.ceil(tested / MAX_POINTS))
    rows = conn.execute(
        "SELECT event_ts, state, statistic, p_value, threshold FROM ("
        "SELECT event_ts, state, statistic, p_value, threshold, "
        "row_number() OVER (ORDER BY event_ts, id) AS n "
        f"FROM signal_history WHERE {where} AND change = 'tested') "
        "WHERE (n - 1) % ? = 0 ORDER BY n LIMIT ?",
        [*key, lo, hi, stride, MAX_POINTS],
    ).fetchall()
    points = [
        HistoryPoint(float(ts), str(state), _finite(s), _finite(p), _finite(t))
        for ts, state, s, p, t in rows
    ]
    changes = [
        Change(float(ts), str(change), str(severity))
        for ts, change, severity in conn.execute(
            f"SELECT event_ts, change, severity FROM signal_history WHERE {where} "
            "AND change IN ('fired', 'escalated', 'resolved') ORDER BY event_ts, id LIMIT ?",
            [*key, lo, hi, MAX_CHANGES],
        )
    ]
    before = conn.execute(
        "SELECT change FROM signal_history WHERE model = ? AND detector = ? AND signal = ? "
        "AND event_ts < ? AND change IN ('fired', 'escalated', 'resolved') "
        "ORDER BY event_ts DESC, id DESC LIMIT 1",
        [*key, lo],
    ).fetchone()
    firing_before = before is not None and before[0] != "resolved"
    return SignalHistory(detector, signal, points, tested, changes, firing_before)


def reference_end(
    conn: sqlite3.Connection, model: str, reference_size: int | None, window: int | None
) -> float | None:
    """The event time the model's warm-up reference ended, where the store knows it.

    The reference is the model's first ``reference_size`` events; the first
    window after it starts at event ``reference_size``. Only an alert on that
    first window records its start time (``window_start_ts``): without one the
    end is not known, and the report draws no reference period.
    """
    if not reference_size or not window:
        return None
    first_window_last = reference_size + window - 1
    for (details,) in conn.execute(
        "SELECT details FROM alerts WHERE model = ? AND details LIKE ? ORDER BY event_ts LIMIT 50",
        [model, f'%"event_index":{first_window_last}%'],
    ):
        start = _window_start(details, first_window_last)
        if start is not None:
            return start
    return None


def _window_start(details: str, event_index: int) -> float | None:
    try:
        parsed = orjson.loads(details)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(parsed, dict) or parsed.get("event_index") != event_index:
        return None
    value = parsed.get("window_start_ts")
    return _finite(value) if isinstance(value, int | float) else None


def _finite(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None
