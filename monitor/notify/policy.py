"""Which incident changes notify whom, and the silences that mute them.

The policy compares each incident with what was last notified about it (table
``incident_notifications``) and turns the difference into outbox rows, inside
the caller's transaction:

- a new incident: ``trigger``; a severity escalation: ``update``;
- still firing (``open``, not acknowledged) ``repeat_seconds`` after the last
  message (wall clock): ``update`` again;
- resolved: ``resolve``, only to the webhooks that were told it was firing.

Each webhook's ``min_severity`` filters, and an active silence whose patterns
match every signal of an incident mutes it: the alerts are kept, nothing is
sent. Once the silence ends a still-firing incident counts as due for a
repeat, so on-call hears of it then. Resolves are sent even when silenced, so
a paging system never keeps an incident open that is over.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
import sqlite_utils

from monitor.audit.chain import AuditLog
from monitor.notify.outbox import WebhookOutbox
from monitor.notify.payloads import NotificationContext, build_body

if TYPE_CHECKING:
    from monitor.config import Config

SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}
# Payloads carry at most this many alerts; the incident row still counts them all.
PAYLOAD_ALERTS = 100


@dataclass(frozen=True)
class Silence:
    """Mutes incidents whose every signal matches these glob patterns, in [starts_at, ends_at)."""

    starts_at: float
    ends_at: float
    created_by: str
    model: str = "*"
    signal: str = "*"
    detector: str = "*"
    comment: str = ""

    def matches(self, model: str, detector: str, signal: str) -> bool:
        return (
            fnmatch.fnmatchcase(model, self.model)
            and fnmatch.fnmatchcase(detector, self.detector)
            and fnmatch.fnmatchcase(signal, self.signal)
        )


def add_silence(db: sqlite_utils.Database, silence: Silence, now: float) -> int:
    if silence.ends_at <= silence.starts_at:
        raise ValueError("a silence must end after it starts")
    cursor = db.execute(
        "INSERT INTO silences (model, signal, detector, starts_at, ends_at, created_by, comment, "
        "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            silence.model,
            silence.signal,
            silence.detector,
            silence.starts_at,
            silence.ends_at,
            silence.created_by,
            silence.comment,
            now,
        ],
    )
    return int(cursor.lastrowid or 0)


def active_silences(db: sqlite_utils.Database, now: float) -> list[Silence]:
    rows = db.execute(
        "SELECT starts_at, ends_at, created_by, model, signal, detector, comment FROM silences "
        "WHERE starts_at <= ? AND ends_at > ?",
        [now, now],
    ).fetchall()
    return [Silence(*row) for row in rows]


def is_silenced(incident: Mapping[str, Any], silences: Sequence[Silence]) -> bool:
    """True when every ``detector:signal`` of the incident matches some active silence."""
    signals = orjson.loads(incident["signals"])
    if not silences or not signals:
        return False
    for entry in signals:
        detector, _, signal = entry.partition(":")
        if not any(s.matches(incident["model"], detector, signal) for s in silences):
            return False
    return True


@dataclass(frozen=True)
class NotificationPolicy:
    """``targets``: each webhook's url, format and min_severity (config entries or targets)."""

    targets: Sequence[Any]
    context: NotificationContext = field(default_factory=NotificationContext)
    repeat_seconds: float = 4 * 3600.0
    # Like Alertmanager's group_interval: a new signal joining a notified incident
    # is worth an update, but not more often than this (wall clock).
    group_interval_seconds: float = 300.0

    @classmethod
    def for_config(cls, config: Config) -> NotificationPolicy | None:
        """The policy of a config's ``[[webhooks]]`` and ``[notifications]``; None without
        webhooks (the daemon's, and ``driftwarden notify``'s)."""
        if not config.webhooks:
            return None
        notes = config.notifications
        return cls(
            config.webhooks,
            NotificationContext(config_path=config.source, external_url=notes.external_url),
            repeat_seconds=notes.repeat_seconds,
            group_interval_seconds=notes.group_interval_seconds,
        )

    def enqueue_changes(self, db: sqlite_utils.Database, now: float) -> int:
        """Turn incident changes since the last call into outbox rows; returns rows written.

        Call inside the transaction that wrote the alerts (``Pipeline.checkpoint``),
        and from the daemon loop now and then so repeats and CLI resolves go out.
        """
        rows = db.execute(
            "SELECT i.*, n.sequence AS n_sequence, n.severity AS n_severity, "
            "n.status AS n_status, n.last_notified_at AS n_last, "
            "n.signal_count AS n_signals FROM incidents i "
            "LEFT JOIN incident_notifications n ON n.incident_id = i.id "
            "WHERE n.incident_id IS NULL OR n.status = 'firing' ORDER BY i.id"
        )
        columns = [c[0] for c in rows.description]
        incidents = [dict(zip(columns, row, strict=True)) for row in rows.fetchall()]
        silences = active_silences(db, now) if incidents else []
        written = 0
        for incident in incidents:
            written += self._notify(db, incident, silences, now)
        return written

    def _notify(
        self,
        db: sqlite_utils.Database,
        incident: dict[str, Any],
        silences: Sequence[Silence],
        now: float,
    ) -> int:
        change = self._change(incident, now)
        if change is None:
            return 0
        kind, reason = change
        sequence = (incident["n_sequence"] or 0) + 1
        chosen = self._targets_for(db, incident, kind, silences)
        if reason == "repeat" and not chosen:
            return 0  # muted or filtered: keep it due, write nothing
        if chosen:
            alerts = _alerts(db, incident["id"])
            for index, target in chosen:
                WebhookOutbox.enqueue(
                    db,
                    url_index=index,
                    url=target.url,
                    fmt=target.format,
                    incident_id=incident["id"],
                    incident_key=incident["key"],
                    kind=kind,
                    reason=reason,
                    sequence=sequence,
                    body=build_body(target.format, incident, alerts, kind, reason, self.context),
                    now=now,
                )
        if reason != "repeat":
            AuditLog.append(
                db,
                "incident_transition",
                f"incident:{incident['id']}",
                {
                    "key": incident["key"],
                    "change": reason,
                    "from": incident["n_status"],
                    "to": incident["status"],
                    "severity": incident["severity"],
                    "notified": len(chosen),
                },
                ts=now,
            )
        last = now if chosen and kind != "resolve" else incident["n_last"] or 0.0
        db.execute(
            "INSERT OR REPLACE INTO incident_notifications (incident_id, sequence, severity, "
            "status, last_notified_at, signal_count) VALUES (?, ?, ?, ?, ?, ?)",
            [
                incident["id"],
                sequence,
                incident["severity"],
                "resolved" if incident["status"] == "resolved" else "firing",
                last,
                _signal_count(incident),
            ],
        )
        return len(chosen)

    def _change(self, incident: Mapping[str, Any], now: float) -> tuple[str, str] | None:
        resolved = incident["status"] == "resolved"
        if incident["n_status"] is None:
            return ("resolve", "resolved") if resolved else ("trigger", "new")
        if resolved:
            return "resolve", "resolved"
        if SEVERITY_RANK[incident["severity"]] > SEVERITY_RANK[incident["n_severity"]]:
            return "update", "escalated"
        since_last = now - (incident["n_last"] or 0.0)
        grown = _signal_count(incident) > (incident["n_signals"] or 0)
        if grown and since_last >= self.group_interval_seconds:
            return "update", "new_signals"
        if incident["status"] == "open" and since_last >= self.repeat_seconds:
            return "update", "repeat"
        return None

    def _targets_for(
        self,
        db: sqlite_utils.Database,
        incident: Mapping[str, Any],
        kind: str,
        silences: Sequence[Silence],
    ) -> list[tuple[int, Any]]:
        if kind == "resolve":
            return [
                (i, t)
                for i, t in enumerate(self.targets)
                if WebhookOutbox.sent_firing(db, incident["id"], t.url, t.format)
            ]
        if is_silenced(incident, silences):
            return []
        rank = SEVERITY_RANK[incident["severity"]]
        return [(i, t) for i, t in enumerate(self.targets) if rank >= SEVERITY_RANK[t.min_severity]]


def _signal_count(incident: Mapping[str, Any]) -> int:
    return len(orjson.loads(incident["signals"]))


def _alerts(db: sqlite_utils.Database, incident_id: int) -> list[dict[str, Any]]:
    rows = db.execute(
        "SELECT id, fingerprint, model, detector, signal, severity, event_ts, details "
        "FROM alerts WHERE incident_id = ? ORDER BY id LIMIT ?",
        [incident_id, PAYLOAD_ALERTS],
    )
    columns = [c[0] for c in rows.description]
    return [dict(zip(columns, row, strict=True)) for row in rows.fetchall()]
