"""Estimated and realized performance per window of predictions, side by side in the store.

Table ``performance_windows``: one row per model, window, metric and kind
(``estimated``: CBPE at the window's close, with the 95% band the realized
value should fall in and the limit below which it alarms; ``realized``: from
the labels that came for the window's predictions, written some windows
later). Rows are written in the checkpoint's transaction and pruned with the
signal history (``[history] retention_days`` of event time).
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlite_utils

from detectors.performance.estimated import WindowResult


@dataclass
class WindowRow:
    """One window and metric of a model: the estimate, its band and limit, and the
    realized value once labels came (None before)."""

    model: str
    window: int
    end_ts: float
    metric: str
    estimated: float | None = None
    band_low: float | None = None
    band_high: float | None = None
    alarm_below: float | None = None
    rows: int = 0
    realized: float | None = None
    labelled: int | None = None


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else x


def write(db: sqlite_utils.Database, model: str, results: Sequence[WindowResult]) -> None:
    """Add a model's window results (call inside the checkpoint's transaction)."""
    db.conn.executemany(
        "INSERT INTO performance_windows (model, window, end_ts, metric, kind, value, "
        "band_low, band_high, alarm_below, rows) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                model,
                r.window,
                r.end_ts,
                r.metric,
                r.kind,
                r.value,
                _finite(r.band_low),
                _finite(r.band_high),
                _finite(r.alarm_below),
                r.rows,
            )
            for r in results
        ],
    )


def prune(db: sqlite_utils.Database, model: str, before: float) -> None:
    db.execute("DELETE FROM performance_windows WHERE model = ? AND end_ts < ?", [model, before])


def read(
    db: sqlite_utils.Database, model: str | None, metric: str | None, limit: int
) -> list[WindowRow]:
    """The latest ``limit`` windows × metrics (of one model and metric, or all), estimate
    and realized value side by side, oldest first."""
    conditions = [(c, v) for c, v in (("model = ?", model), ("metric = ?", metric)) if v]
    where = "WHERE " + " AND ".join(c for c, _ in conditions) if conditions else ""
    args = [v for _, v in conditions]
    rows = db.execute(
        f"SELECT {_COLUMNS} FROM performance_windows {where} ORDER BY id", args
    ).fetchall()
    return merge(rows)[-limit:]


def read_span(
    conn: sqlite3.Connection, model: str, lo: float, hi: float, most: int = 400
) -> dict[str, list[WindowRow]]:
    """A model's windows that closed between ``lo`` and ``hi`` (event time), per metric,
    each metric's at most ``most``, evenly spaced (the latest always kept). For the
    report, on its read-only connection; a store from before estimates gives none."""
    if (
        conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'performance_windows'"
        ).fetchone()
        is None
    ):
        return {}
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM performance_windows "
        "WHERE model = ? AND end_ts BETWEEN ? AND ? ORDER BY id",
        [model, lo, hi],
    ).fetchall()
    out: dict[str, list[WindowRow]] = {}
    for row in merge(rows):
        out.setdefault(row.metric, []).append(row)
    for metric, windows in out.items():
        if len(windows) > most:
            step = len(windows) / most
            kept = [windows[int(i * step)] for i in range(most - 1)]
            out[metric] = [*kept, windows[-1]]
    return out


_COLUMNS = "model, window, metric, kind, end_ts, value, band_low, band_high, alarm_below, rows"


def merge(rows: Iterable[Sequence[Any]]) -> list[WindowRow]:
    """Rows of the table (``_COLUMNS``, in insertion order) as one ``WindowRow`` per
    model, window and metric, oldest first. A baseline reset restarts window numbers:
    the latest estimate of a model, window and metric starts its row again."""
    merged: dict[tuple[str, int, str], WindowRow] = {}
    for m, window, metric, kind, end_ts, value, low, high, below, n in rows:
        key = (m, window, metric)
        if kind == "estimated" or key not in merged:
            merged[key] = WindowRow(m, window, float(end_ts), metric)
        row = merged[key]
        if kind == "estimated":
            row.estimated, row.band_low, row.band_high = value, low, high
            row.alarm_below, row.rows = below, int(n)
        else:
            row.realized, row.labelled = value, int(n)
    return sorted(merged.values(), key=lambda r: (r.end_ts, r.model, r.metric))
