"""Signal states in the store: which signals fire now, their history, and when
an incident is over.

The detectors say, in stream order, when a signal fires, escalates, is
confirmed (still firing, tested again) or resolves, and give each windowed
test's statistic (:class:`detectors.base.SignalChange`). Here they become:

- ``signal_state``: one row per model x detector x signal, ``ok`` or
  ``firing`` now, with its latest evaluation;
- ``signal_history``: one row per evaluation or change, kept for
  ``[history] retention_days`` of the model's event time;
- incident resolution: an incident resolves when every signal it holds is
  ``ok`` again (resolved by ``driftwarden (signals ok)``, at the event time of
  the last resolution), never because alerts stopped coming.

All of it depends on the stream only (event times, never the wall clock, apart
from ``updated_at``), so a replay writes the same states as the live run.
"""

from __future__ import annotations

import math
import sqlite3
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
import sqlite_utils

from detectors.base import Finding, SignalChange
from monitor.audit.chain import AuditLog
from monitor.incidents.grouping import SEVERITY_RANK, AlertPolicy, contract_signal

SIGNALS_RESOLVER = "driftwarden (signals ok)"


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def apply(
    db: sqlite_utils.Database,
    model: str,
    changes: Sequence[SignalChange],
    findings: Iterable[Finding],
    policy: AlertPolicy,
    now: float,
) -> int:
    """Write a model's changes and alerts in stream order; returns the alerts written.

    Each change moves its signal's state and adds a history row; a signal that
    fires or escalates brings its alert, which the policy files under an
    incident; a signal that resolves may end the incidents holding it. Taking
    them in event order makes incidents independent of where checkpoints fall:
    an alert joins an incident only if that incident was still open at the
    alert's event time.
    """
    pending: dict[tuple[str, str, float], deque[Finding]] = {}
    for f in findings:
        pending.setdefault((f.detector, f.signal, f.event_ts), deque()).append(f)
    written = 0
    history = []
    for change in sorted(changes, key=_event_order):
        signal = contract_signal(change.signal)
        state = _transition(db, model, change, signal, now)
        history.append(_history_row(model, change, signal, state))
        if change.change in ("fired", "escalated"):
            queue = pending.get((change.detector, change.signal, change.event_ts))
            if queue:
                written += policy.record(db, model, [queue.popleft()])
        elif change.change == "resolved":
            resolve_incidents(db, model, now, change.event_ts)
    rest = sorted((f for queue in pending.values() for f in queue), key=lambda f: f.event_ts)
    written += policy.record(db, model, rest)
    db.conn.executemany(
        "INSERT INTO signal_history (model, detector, signal, event_ts, change, state, severity, "
        "statistic, p_value, threshold, effect_size) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        history,
    )
    # Windowed tests' latest statistics came with their evaluations; the other
    # detectors' come with their alerts.
    tested = {(c.detector, c.signal) for c in changes if c.change == "tested"}
    for f in findings:
        if (f.detector, f.signal) not in tested:
            _latest_statistics(db, model, f)
    resolve_incidents(db, model, now)  # those whose signals no state ever recorded
    return written


def _event_order(change: SignalChange) -> float:
    return change.event_ts if math.isfinite(change.event_ts) else -math.inf


def _history_row(model: str, change: SignalChange, signal: str, state: str) -> tuple[Any, ...]:
    return (
        model,
        change.detector,
        signal,
        change.event_ts if math.isfinite(change.event_ts) else 0.0,
        change.change,
        state,
        change.severity,
        _finite(change.statistic),
        _finite(change.p_value),
        _finite(change.threshold),
        _finite(change.effect_size),
    )


def _latest_statistics(db: sqlite_utils.Database, model: str, f: Finding) -> None:
    db.execute(
        "UPDATE signal_state SET statistic = ?, p_value = ?, threshold = ?, effect_size = ? "
        "WHERE model = ? AND detector = ? AND signal = ?",
        [
            _finite(f.statistic),
            _finite(f.p_value),
            _finite(f.threshold),
            _finite(f.effect_size),
            model,
            f.detector,
            contract_signal(f.signal),
        ],
    )


def _transition(
    db: sqlite_utils.Database, model: str, change: SignalChange, signal: str, now: float
) -> str:
    """Apply one change to the signal's row; return its state after it."""
    key = [model, change.detector, signal]
    row = db.execute(
        "SELECT state, severity FROM signal_state WHERE model = ? AND detector = ? AND signal = ?",
        key,
    ).fetchone()
    ts = change.event_ts if math.isfinite(change.event_ts) else None
    if row is None:
        db.execute(
            "INSERT INTO signal_state (model, detector, signal, state, severity, updated_at) "
            "VALUES (?, ?, ?, 'ok', 'info', ?)",
            [*key, now],
        )
        row = ("ok", "info")
    state, severity = row
    where = " WHERE model = ? AND detector = ? AND signal = ?"
    if change.change in ("fired", "escalated", "confirmed"):
        if state != "firing":
            db.execute(
                "UPDATE signal_state SET state = 'firing', severity = ?, since_ts = ?, "
                "last_tested_ts = ?, last_violation_ts = ?, updated_at = ?" + where,
                [change.severity, ts, ts, ts, now, *key],
            )
            return "firing"
        if SEVERITY_RANK[change.severity] > SEVERITY_RANK[severity]:
            severity = change.severity
        db.execute(
            "UPDATE signal_state SET severity = ?, last_tested_ts = ?, last_violation_ts = ?, "
            "updated_at = ?" + where,
            [severity, ts, ts, now, *key],
        )
        return "firing"
    if change.change == "resolved":
        db.execute(
            "UPDATE signal_state SET state = 'ok', resolved_ts = ?, last_tested_ts = ?, "
            "updated_at = ?" + where,
            [ts, ts, now, *key],
        )
        return "ok"
    db.execute(  # tested: the latest evaluation; the state is the transitions'
        "UPDATE signal_state SET last_tested_ts = ?, statistic = ?, p_value = ?, threshold = ?, "
        "effect_size = ?, updated_at = ?" + where,
        [
            ts,
            _finite(change.statistic),
            _finite(change.p_value),
            _finite(change.threshold),
            _finite(change.effect_size),
            now,
            *key,
        ],
    )
    return "firing" if change.firing else "ok"  # as this window's test left it


def firing(db: sqlite_utils.Database | sqlite3.Connection, model: str) -> set[str]:
    """The model's firing signals, as ``detector:signal`` (the incidents' form); ``db``
    may be a read-only connection (the report's)."""
    rows = db.execute(
        "SELECT detector, signal FROM signal_state WHERE model = ? AND state = 'firing'", [model]
    ).fetchall()
    return {f"{detector}:{signal}" for detector, signal in rows}


def resolve_incidents(
    db: sqlite_utils.Database, model: str, now: float, event_ts: float | None = None
) -> int:
    """Resolve the model's open incidents none of whose signals fires; returns how many.

    ``event_ts`` is when (in event time) the last of them resolved, if known.
    """
    open_incidents = db.execute(
        "SELECT id, key, status, signals FROM incidents WHERE model = ? AND status != 'resolved'",
        [model],
    ).fetchall()
    if not open_incidents:
        return 0
    still = firing(db, model)
    resolved = 0
    for incident_id, key, status, signals_json in open_incidents:
        signals = orjson.loads(signals_json)
        if any(s in still for s in signals):
            continue
        ended = event_ts if event_ts is not None else _last_resolution(db, model, signals)
        db.execute(
            "UPDATE incidents SET status = 'resolved', resolved_by = ?, resolved_at = ?, "
            "resolved_event_ts = ?, updated_at = ? WHERE id = ?",
            [SIGNALS_RESOLVER, now, ended, now, incident_id],
        )
        change = {"key": key, "change": "resolved", "from": status, "to": "resolved"}
        change["by"] = SIGNALS_RESOLVER
        AuditLog.append(db, "incident_transition", f"incident:{incident_id}", change, ts=now)
        resolved += 1
    return resolved


def _last_resolution(db: sqlite_utils.Database, model: str, signals: list[str]) -> float | None:
    """The event time at which the last of ``signals`` returned to ok."""
    latest: float | None = None
    for name in signals:
        detector, _, signal = name.partition(":")
        row = db.execute(
            "SELECT resolved_ts FROM signal_state WHERE model = ? AND detector = ? AND signal = ?",
            [model, detector, signal],
        ).fetchone()
        if row is not None and row[0] is not None and (latest is None or row[0] > latest):
            latest = float(row[0])
    return latest


def clear_model(db: sqlite_utils.Database, model: str, event_ts: float | None, now: float) -> None:
    """The model's detector state is gone (a baseline reset, a lost state): none of
    its signals fires any more, and incidents held open by them resolve."""
    db.execute(
        "UPDATE signal_state SET state = 'ok', resolved_ts = ?, updated_at = ? "
        "WHERE model = ? AND state = 'firing'",
        [event_ts, now, model],
    )
    resolve_incidents(db, model, now)


def prune_history(db: sqlite_utils.Database, model: str, before_ts: float) -> None:
    """Forget the model's history older than ``before_ts`` (event time)."""
    db.execute("DELETE FROM signal_history WHERE model = ? AND event_ts < ?", [model, before_ts])
