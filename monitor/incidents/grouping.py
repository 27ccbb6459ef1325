"""Findings become alert rows, grouped into incidents.

Event time decides grouping, so a replay groups exactly as the live run did: a
finding joins its model's open incident when it comes within ``group_seconds``
of event time after that incident's last alert, and opens a new one otherwise.
An incident resolves by itself when none of its signals fires any more
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
from monitor.store.store import fingerprint

SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


@dataclass(frozen=True)
class AlertPolicy:
    group_seconds: float = 3600.0

    def record(self, db: sqlite_utils.Database, model: str, findings: Iterable[Finding]) -> int:
        """Insert the alerts of ``findings`` and update incidents; call inside a transaction."""
        written = 0
        now = time.time()
        for finding in findings:
            finding = dataclasses.replace(finding, signal=contract_signal(finding.signal))
            incident_id = self._incident_for(db, model, finding, now)
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
        self, db: sqlite_utils.Database, model: str, finding: Finding, now: float
    ) -> int:
        row = db.execute(
            "SELECT id, severity, last_event_ts, signals FROM incidents "
            "WHERE model = ? AND status != 'resolved' ORDER BY id DESC LIMIT 1",
            [model],
        ).fetchone()
        signal = f"{finding.detector}:{finding.signal}"
        if row is not None and finding.event_ts - row[2] <= self.group_seconds:
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
        key = hashlib.sha256(f"{model}\x00{finding.event_ts!r}\x00{signal}".encode()).hexdigest()
        cursor = db.execute(
            "INSERT INTO incidents (key, model, status, severity, title, first_event_ts, "
            "last_event_ts, alert_count, signals, opened_at, updated_at) "
            "VALUES (?, ?, 'open', ?, ?, ?, ?, 1, ?, ?, ?)",
            [
                key[:20],
                model,
                finding.severity,
                f"{model}: {finding.detector} on {finding.signal}",
                finding.event_ts,
                finding.event_ts,
                orjson.dumps([signal]),
                now,
                now,
            ],
        )
        return int(cursor.lastrowid or 0)


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
    details = {
        "statistic": finding.statistic,
        "threshold": finding.threshold,
        "p_value": finding.p_value,
        "effect_size": finding.effect_size,
        **finding.details,
    }
    return orjson.dumps(details, option=orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY).decode()
