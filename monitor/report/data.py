"""What the HTML report shows, read from a store without changing it.

The store is opened read-only: a report must never create tables in, or take
write locks on, the store of a running daemon.
"""

from __future__ import annotations

import dataclasses
import hashlib
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from monitor.errors import DriftwardenError
from monitor.store.errors import describe
from monitor.store.store import connect_read_only


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
class ReportData:
    store: Path
    incidents: list[IncidentRow]
    config_loads: list[ConfigLoad]
    references: dict[str, ModelReference]


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
    rows = conn.execute(
        "SELECT id, key, model, status, severity, title, first_event_ts, last_event_ts, "
        f"alert_count, signals, opened_at FROM incidents {where} ORDER BY id",
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
            firing=_firing(conn, str(r[2])) if "signal_state" in tables else [],
        )
        for r in rows
    ]
    incidents = [
        dataclasses.replace(i, firing=[s for s in i.signals if s in i.firing]) for i in incidents
    ]
    loads = _config_loads(conn) if "audit" in tables else []
    models = {i.model for i in incidents}
    references = (
        _references(conn, models, "state_blobs" in tables) if "model_state" in tables else {}
    )
    return ReportData(path, incidents, loads, references)


def _firing(conn: sqlite3.Connection, model: str) -> list[str]:
    """The model's signals firing now, as ``detector:signal``."""
    rows = conn.execute(
        "SELECT detector, signal FROM signal_state WHERE model = ? AND state = 'firing'", [model]
    ).fetchall()
    return [f"{detector}:{signal}" for detector, signal in rows]


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
