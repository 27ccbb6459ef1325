"""Findings become alert rows, grouped into incidents.

Alerts group by problem (``AlertPolicy``); the stream decides it, never the
wall clock, so a replay groups exactly as the live run did. An incident
resolves by itself when none of its signals fires any more
(``monitor.incidents.signal_states``): never because alerts stopped coming.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Iterable
from dataclasses import dataclass

import orjson
import sqlite_utils

from detectors.base import Finding
from monitor.incidents.kinds import Kind, group_key, kind_of, title
from monitor.store.store import fingerprint

SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


@dataclass(frozen=True)
class AlertPolicy:
    """How alerts become incidents.

    An alert joins the latest open incident of its group (by default its model
    and kind: ``alerting.group_by``; a caller's alerts are always their own
    group) and opens a new one when the group has none. An incident is open
    while any of its signals fires (``monitor.incidents.signal_states``), so a
    problem that holds keeps one incident however sparse the stream, and one
    that comes back after its incident resolved opens a new one.
    """

    group_by: tuple[str, ...] = ("model", "kind")

    def record(self, db: sqlite_utils.Database, model: str, findings: Iterable[Finding]) -> int:
        """Insert the alerts of ``findings`` and update incidents; call inside a transaction."""
        written = 0
        now = time.time()
        for finding in findings:
            kind = kind_of(finding.signal)
            finding = dataclasses.replace(finding, signal=contract_signal(finding.signal))
            incident_id = self._incident_for(db, model, kind, finding, now)
            db.execute(
                "INSERT INTO alerts (fingerprint, model, detector, signal, severity, event_ts, "
                "created_at, details, incident_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    fingerprint(model, finding.detector, finding.signal),
                    model,
                    finding.detector,
                    finding.signal,
                    finding.severity,
                    finding.event_ts,
                    now,
                    alert_details(finding),
                    incident_id,
                ],
            )
            written += 1
        return written

    def _incident_for(
        self, db: sqlite_utils.Database, model: str, kind: Kind, finding: Finding, now: float
    ) -> int:
        labels = {"model": model, "kind": kind, "detector": finding.detector}
        labels["signal"] = finding.signal
        caller = attributed_caller(finding)
        if caller is not None:
            # Drift that a flagged caller's own traffic explains is that caller's
            # problem: one incident, not one per feature it moved.
            kind = "client"
            labels.update(kind=kind, signal=caller)
        group = group_key(labels, self.group_by)
        row = db.execute(
            "SELECT id, severity, last_event_ts, signals FROM incidents "
            "WHERE model = ? AND group_key = ? AND status != 'resolved' ORDER BY id DESC LIMIT 1",
            [model, group],
        ).fetchone()
        signal = f"{finding.detector}:{finding.signal}"
        if row is not None:
            incident_id, severity, last_ts, signals_json = row
            signals = orjson.loads(signals_json)
            if signal not in signals:
                signals.append(signal)
            if SEVERITY_RANK[finding.severity] > SEVERITY_RANK[severity]:
                severity = finding.severity
            db.execute(
                "UPDATE incidents SET severity = ?, last_event_ts = ?, "
                "alert_count = alert_count + 1, signals = ?, updated_at = ? WHERE id = ?",
                [severity, max(last_ts, finding.event_ts), orjson.dumps(signals), now, incident_id],
            )
            return int(incident_id)
        key = _new_key(db, f"{model}\x00{finding.event_ts!r}\x00{signal}")
        metric_kind = str(finding.details.get("kind", "")) if kind == "metric" else ""
        direction = str(finding.details.get("direction", "")) if kind == "performance" else ""
        cursor = db.execute(
            "INSERT INTO incidents (key, model, status, severity, title, first_event_ts, "
            "last_event_ts, alert_count, signals, opened_at, updated_at, kind, group_key) "
            "VALUES (?, ?, 'open', ?, ?, ?, ?, 1, ?, ?, ?, ?, ?)",
            [
                key,
                model,
                finding.severity,
                title(
                    model, kind, finding.detector, finding.signal, metric_kind[:40], direction[:210]
                ),
                finding.event_ts,
                finding.event_ts,
                orjson.dumps([signal]),
                now,
                now,
                kind,
                group,
            ],
        )
        return int(cursor.lastrowid or 0)


def _new_key(db: sqlite_utils.Database, seed: str) -> str:
    """A key no incident has: the hash of what opened it, and where the same
    model, time and signal opened one before (the same events after a baseline
    reset, a replay into the same store), of that and a count."""
    key, n = hashlib.sha256(seed.encode()).hexdigest()[:20], 0
    while db.execute("SELECT 1 FROM incidents WHERE key = ?", [key]).fetchone() is not None:
        n += 1
        key = hashlib.sha256(f"{seed}\x00{n}".encode()).hexdigest()[:20]
    return key


def attributed_caller(finding: Finding) -> str | None:
    """The caller (``client:<id>``) a drift finding is attributed to, if any: the
    first of ``details.attributed_to``, set by the client detectors."""
    named = finding.details.get("attributed_to")
    first = named[0] if isinstance(named, list) and named else None
    return first if isinstance(first, str) and first.startswith("client:") else None


def contract_signal(signal: str) -> str:
    """The store's signal names (CONTRACT §4): a feature or metric by its plain name.

    The detectors prefix features and metrics to keep their state apart.
    """
    for prefix in ("feature:", "metric:"):
        if signal.startswith(prefix):
            return signal[len(prefix) :]
    return signal


def alert_details(finding: Finding) -> str:
    """The ``details`` JSON of an alert: the statistics and what the detector added."""
    details = {  # the finding's own figures win over a detail of the same name
        **finding.details,
        "statistic": finding.statistic,
        "threshold": finding.threshold,
        "p_value": finding.p_value,
        "effect_size": finding.effect_size,
    }
    return orjson.dumps(details, option=orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY).decode()
