"""A model's checkpoint from the alerts topic, applied to the notifier's store as a worker would.

A record carries the rows a worker's checkpoint wrote for one model (alerts,
signal history, performance windows; ``publish``). The notifier turns them
back into what the checkpoint started from, the signal changes and findings,
and applies them with the same code (``signal_states.apply``: signal states,
history, alerts filed under incidents in event order, resolutions), so its
incidents are the ones a single machine would have. The audit rows of the
model's baseline (``baseline_change``: warm-ups, resets, references set) are
appended to the notifier's audit log as they came. The history and performance
windows older than the worker's checkpoint kept (``history_before``: its model's
event clock less ``[history] retention_days``) go, as they went there.

Alerts store a signal's short name (``amount`` for ``feature:amount``); the
incident's kind depends on the long one, so each published alert carries its
``kind`` and the long name is rebuilt from it; a signal change takes the long
name of an alert of the same detector and signal, as the worker paired them.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson
import sqlite_utils

from detectors.base import Finding, SignalChange
from detectors.performance.estimated import WindowResult
from monitor.audit.chain import AuditLog
from monitor.cluster.publish import OUTPUTS
from monitor.cluster.records import native_row
from monitor.incidents import signal_states
from monitor.incidents.grouping import AlertPolicy
from monitor.pipeline import performance_windows

STATISTICS = ("statistic", "threshold", "p_value", "effect_size")
# The prefixes the detectors give signals that the store shortens, by kind.
LONG_FORM = {"drift": "feature:", "metric": "metric:"}
# Parts of 900 KB: far past any checkpoint; a record claiming more is not one.
MAX_PARTS = 10_000
# What applying a record that is not a worker's checkpoint raises (anyone allowed to
# produce to the alerts topic can write one): it is refused, and the topic goes on.
MALFORMED = (
    KeyError,
    IndexError,
    TypeError,
    ValueError,
    AttributeError,
    OverflowError,
    sqlite3.IntegrityError,
    sqlite3.InterfaceError,  # a value of a type no column holds (a list, an object)
    sqlite3.ProgrammingError,
)
# A model's checkpoint in parts waits whole in memory: past this, it is not a worker's.
MAX_PENDING_BYTES = 256 * 1024 * 1024


class RefusedRecord(ValueError):
    """A record of the alerts topic that is not a part of a worker's checkpoint."""


def part_number(value: bytes | None, model: str, models: frozenset[str]) -> tuple[int, int]:
    """A record's ``(part, parts)``, checked before anything is kept of it."""
    if model not in models:
        raise RefusedRecord("its key names no model of this config's [[models]]")
    try:
        head = orjson.loads(value) if value is not None else None
    except orjson.JSONDecodeError as exc:
        raise RefusedRecord(f"not JSON: {exc}") from None
    if not isinstance(head, dict) or head.get("model") != model:
        raise RefusedRecord("not an object whose model is its key")
    part, parts = head.get("part"), head.get("parts")
    if not (isinstance(part, int) and isinstance(parts, int) and 0 <= part < parts <= MAX_PARTS):
        raise RefusedRecord(f"part and parts must be integers, 0 <= part < parts <= {MAX_PARTS}")
    return part, parts


def merged(parts: list[bytes]) -> dict[str, Any]:
    """The parts of one model's checkpoint as one record."""
    whole: dict[str, Any] = {table: [] for table in OUTPUTS}
    for value in parts:
        part = orjson.loads(value)
        whole["model"] = part["model"]
        if "history_before" in part:
            whole["history_before"] = float(part["history_before"])
        for table in OUTPUTS:
            whole[table] += [native_row(row) for row in part.get(table, [])]
    return whole


def apply(
    db: sqlite_utils.Database, record: dict[str, Any], policy: AlertPolicy, now: float
) -> int:
    """Apply one model's checkpoint inside the caller's transaction; returns alerts written."""
    model = record["model"]
    findings = [_finding(row) for row in record["alerts"]]
    long_names = {(f.detector, _short(f.signal)): f.signal for f in findings}
    changes = [_change(row, long_names) for row in record["signal_history"]]
    written = signal_states.apply(db, model, changes, findings, policy, now)
    windows = [_window(row) for row in record["performance_windows"]]
    performance_windows.write(db, model, windows)
    if written:
        AuditLog.append_new_alerts(db)
    before = record.get("history_before")
    if before is not None:  # as the worker's checkpoint pruned its own store
        signal_states.prune_history(db, model, before)
        performance_windows.prune(db, model, before)
    for change in record["baseline_changes"]:  # as the worker's audit log has them
        content = orjson.loads(change["content"])
        AuditLog.append(db, "baseline_change", f"model:{model}", content, ts=change["ts"])
    return written


def _short(signal: str) -> str:
    for prefix in LONG_FORM.values():
        if signal.startswith(prefix):
            return signal[len(prefix) :]
    return signal


def _finding(row: dict[str, Any]) -> Finding:
    details = orjson.loads(row["details"])
    figures = {name: details.pop(name, None) for name in STATISTICS}
    prefix = LONG_FORM.get(str(row.get("kind")), "")
    return Finding(
        detector=row["detector"],
        signal=prefix + row["signal"],
        event_ts=row["event_ts"],
        severity=row["severity"],
        details=details,
        **figures,
    )


def _change(row: dict[str, Any], long_names: dict[tuple[str, str], str]) -> SignalChange:
    signal = long_names.get((row["detector"], row["signal"]), row["signal"])
    return SignalChange(
        change=row["change"],
        detector=row["detector"],
        signal=signal,
        event_ts=row["event_ts"],
        severity=row["severity"],
        firing=row["state"] == "firing",
        statistic=row["statistic"],
        threshold=row["threshold"],
        p_value=row["p_value"],
        effect_size=row["effect_size"],
    )


def _window(row: dict[str, Any]) -> WindowResult:
    return WindowResult(
        window=row["window"],
        end_ts=row["end_ts"],
        metric=row["metric"],
        kind=row["kind"],
        value=row["value"],
        band_low=row["band_low"],
        band_high=row["band_high"],
        rows=row["rows"],
        alarm_below=row["alarm_below"],
    )
