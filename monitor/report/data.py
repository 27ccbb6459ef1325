"""What the HTML report shows, read from a store without changing it.

The store is opened read-only: a report must never create tables in, or take
write locks on, the store of a running daemon.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from monitor.errors import DriftwardenError
from monitor.incidents import signal_states
from monitor.pipeline import performance_windows
from monitor.pipeline.performance_windows import WindowRow
from monitor.report.history import SignalHistory, incident_range, read_history, reference_end
from monitor.store.errors import describe
from monitor.store.store import REPLAY_GROUP, connect_read_only


@dataclass(frozen=True)
class AlertRow:
    id: int
    model: str
    detector: str
    signal: str
    severity: str
    event_ts: float
    details: dict[str, Any]


@dataclass(frozen=True)
class IncidentRow:
    id: int
    key: str
    model: str
    status: str
    severity: str
    title: str
    first_event_ts: float
    last_event_ts: float
    alert_count: int
    signals: list[str]
    opened_at: float
    alerts: list[AlertRow] = field(default_factory=list)
    firing: list[str] = field(default_factory=list)  # its signals firing now
    kind: str = ""
    resolved_event_ts: float | None = None
    last_created_at: float | None = None  # wall clock of its last alert's write
    # Per ``detector:signal``: its history around the incident (``monitor.report.history``).
    history: dict[str, SignalHistory] = field(default_factory=dict)
    # Per metric: the model's estimated and realized performance windows in its span.
    performance: dict[str, list[WindowRow]] = field(default_factory=dict)


@dataclass(frozen=True)
class ConfigLoad:
    """An ``audit`` row of kind ``config_load``: which config a daemon started with."""

    ts: float
    source: str
    sha256: str


@dataclass(frozen=True)
class ModelReference:
    """A model's stored detector state: its checksum and the settings in it."""

    model: str
    sha256: str  # of the stored state as it is (changes at every checkpoint)
    baseline_sha256: str | None  # of its reference baselines (fixed after warm-up)
    events: int
    window: int | None
    reference_size: int | None


@dataclass(frozen=True)
class BaselineFile:
    """The reference a model was given by ``baseline set`` or ``replay --reference``."""

    model: str
    source: str  # the file's name as recorded (the store keeps no folder)
    sha256: str
    requested_by: str


@dataclass(frozen=True)
class ReportData:
    store: Path
    incidents: list[IncidentRow]
    config_loads: list[ConfigLoad]
    references: dict[str, ModelReference]
    # Topics a daemon (or a Kafka replay) read, from ``offsets``: none for a file replay.
    topics: list[str] = field(default_factory=list)
    baseline_files: dict[str, BaselineFile] = field(default_factory=dict)
    reference_ends: dict[str, float] = field(default_factory=dict)  # model: event time


def load_report(path: Path, incident: int | None = None) -> ReportData:
    """Every incident (or only ``incident``) with its alerts, and the provenance rows."""
    conn = connect_read_only(path, " (check --store)")
    try:
        return _read(conn, path, incident)
    except sqlite3.DatabaseError as exc:
        said = describe(exc, path)
        raise DriftwardenError(
            said or f"store {path}: cannot read it as a Driftwarden store: {exc}"
        ) from None
    finally:
        conn.close()


def _read(conn: sqlite3.Connection, path: Path, number: int | None) -> ReportData:
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not {"incidents", "alerts"} <= tables:
        raise DriftwardenError(f"store {path} has no incidents table: is it a Driftwarden store?")
    where, params = ("WHERE id = ?", [number]) if number is not None else ("", [])
    columns = {r[1] for r in conn.execute("PRAGMA table_info(incidents)")}
    # Stores from before incident kinds and signal states lack these columns.
    kind = "kind" if "kind" in columns else "''"
    resolved = "resolved_event_ts" if "resolved_event_ts" in columns else "NULL"
    rows = conn.execute(
        "SELECT id, key, model, status, severity, title, first_event_ts, last_event_ts, "
        f"alert_count, signals, opened_at, {kind}, {resolved} FROM incidents {where} ORDER BY id",
        params,
    ).fetchall()
    if not rows:
        if number is not None:
            raise DriftwardenError(
                f"no incident {number} in {path}: see `driftwarden incidents list --store {path}`"
            )
        raise DriftwardenError(f"store {path} holds no incidents: nothing to report")
    incidents = [
        IncidentRow(
            id=int(r[0]),
            key=str(r[1]),
            model=str(r[2]),
            status=str(r[3]),
            severity=str(r[4]),
            title=str(r[5]),
            first_event_ts=float(r[6]),
            last_event_ts=float(r[7]),
            alert_count=int(r[8]),
            signals=[str(s) for s in orjson.loads(r[9])],
            opened_at=float(r[10]),
            alerts=_alerts(conn, int(r[0])),
            firing=sorted(signal_states.firing(conn, str(r[2])))
            if "signal_state" in tables
            else [],
            kind=str(r[11] or ""),
            resolved_event_ts=float(r[12]) if r[12] is not None else None,
            last_created_at=_last_created_at(conn, int(r[0])),
        )
        for r in rows
    ]
    incidents = [
        dataclasses.replace(
            i,
            firing=[s for s in i.signals if s in i.firing],
            history=(
                read_history(conn, i.model, i.signals, shown_range(i))
                if "signal_history" in tables
                else {}
            ),
            performance=_performance(conn, i),
        )
        for i in incidents
    ]
    loads = _config_loads(conn) if "audit" in tables else []
    models = {i.model for i in incidents}
    references = (
        _references(conn, models, "state_blobs" in tables) if "model_state" in tables else {}
    )
    ends = {}
    for model, ref in references.items():
        end = reference_end(conn, model, ref.reference_size, ref.window)
        if end is not None:
            ends[model] = end
    return ReportData(
        path,
        incidents,
        loads,
        references,
        topics=_topics(conn) if "offsets" in tables else [],
        baseline_files=_baseline_files(conn, models) if "baseline_references" in tables else {},
        reference_ends=ends,
    )


def _performance(conn: sqlite3.Connection, incident: IncidentRow) -> dict[str, list[WindowRow]]:
    span = shown_range(incident)
    return {} if span is None else performance_windows.read_span(conn, incident.model, *span)


def window_starts(incident: IncidentRow) -> list[float]:
    """The first event times of the windows the incident's alerts judged."""
    out = []
    for a in incident.alerts:
        start = a.details.get("window_start_ts")
        if isinstance(start, int | float) and not isinstance(start, bool) and math.isfinite(start):
            out.append(float(start))
    return out


def shown_range(incident: IncidentRow) -> tuple[float, float] | None:
    """The event time the report shows of an incident (None for times beyond drawing)."""
    return incident_range(
        incident.first_event_ts,
        incident.last_event_ts,
        incident.resolved_event_ts,
        window_starts(incident),
    )


def _last_created_at(conn: sqlite3.Connection, incident_id: int) -> float | None:
    row = conn.execute(
        "SELECT max(created_at) FROM alerts WHERE incident_id = ?", [incident_id]
    ).fetchone()
    return float(row[0]) if row and isinstance(row[0], int | float) else None


def _topics(conn: sqlite3.Connection) -> list[str]:
    """The topics read into this store: a daemon's first, else a Kafka replay's."""
    rows = conn.execute(
        "SELECT DISTINCT topic, group_id = ? FROM offsets ORDER BY 2, 1", [REPLAY_GROUP]
    ).fetchall()
    live = [str(t) for t, replayed in rows if not replayed]
    return live or [str(t) for t, _ in rows]


def _baseline_files(conn: sqlite3.Connection, models: set[str]) -> dict[str, BaselineFile]:
    """Each model's reference in force that came from a file (not superseded by a reset)."""
    out = {}
    for model, source, digest, who in conn.execute(
        "SELECT model, source, sha256, requested_by FROM baseline_references "
        "WHERE superseded_at IS NULL ORDER BY id"
    ):
        if model in models:
            out[str(model)] = BaselineFile(str(model), str(source), str(digest), str(who))
    return out


def _alerts(conn: sqlite3.Connection, incident_id: int) -> list[AlertRow]:
    rows = conn.execute(
        "SELECT id, model, detector, signal, severity, event_ts, details FROM alerts "
        "WHERE incident_id = ? ORDER BY event_ts, id",
        [incident_id],
    ).fetchall()
    out = []
    for alert_id, model, detector, signal, severity, event_ts, details in rows:
        try:
            parsed = orjson.loads(details)
        except orjson.JSONDecodeError:
            parsed = {}
        out.append(
            AlertRow(
                id=int(alert_id),
                model=str(model),
                detector=str(detector),
                signal=str(signal),
                severity=str(severity),
                event_ts=float(event_ts),
                details=parsed if isinstance(parsed, dict) else {},
            )
        )
    return out


def _config_loads(conn: sqlite3.Connection) -> list[ConfigLoad]:
    rows = conn.execute(
        "SELECT ts, subject, content FROM audit WHERE kind = 'config_load' ORDER BY id"
    ).fetchall()
    out = []
    for ts, subject, content in rows:
        try:
            digest = orjson.loads(content).get("sha256", "")
        except (orjson.JSONDecodeError, AttributeError):
            digest = ""
        out.append(ConfigLoad(float(ts), str(subject), str(digest or "")))
    return out


def _references(
    conn: sqlite3.Connection, models: set[str], has_blobs: bool
) -> dict[str, ModelReference]:
    out = {}
    for model, state, events in conn.execute("SELECT model, state, events FROM model_state"):
        if model not in models:
            continue
        blob = state if isinstance(state, bytes) else str(state).encode()
        settings: dict[str, Any] = {}
        try:
            parsed = orjson.loads(blob)
            if isinstance(parsed, dict) and isinstance(parsed.get("settings"), dict):
                settings = parsed["settings"]
        except orjson.JSONDecodeError:
            pass
        out[model] = ModelReference(
            model=model,
            sha256=hashlib.sha256(blob).hexdigest(),
            baseline_sha256=_baseline_sha256(conn, model) if has_blobs else None,
            events=int(events),
            window=_int_or_none(settings.get("window")),
            reference_size=_int_or_none(settings.get("reference_size")),
        )
    return out


def _baseline_sha256(conn: sqlite3.Connection, model: str) -> str | None:
    """The reference baselines a checkpoint stores apart from the state (``state_blobs``)."""
    digest = hashlib.sha256()
    rows = conn.execute(
        "SELECT digest, data FROM state_blobs WHERE model = ? ORDER BY digest", [model]
    )
    found = False
    for key, data in rows:
        found = True
        digest.update(f"{key}\n".encode())
        digest.update(data if isinstance(data, bytes) else str(data).encode())
    return digest.hexdigest() if found else None


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def config_in_force(loads: list[ConfigLoad], at: float) -> ConfigLoad | None:
    """The last config load at or before wall-clock time ``at`` (else the first one)."""
    before = [c for c in loads if c.ts <= at]
    if before:
        return before[-1]
    return loads[0] if loads else None
