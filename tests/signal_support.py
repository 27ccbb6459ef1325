"""Signals fired and resolved in a real store the way the pipeline's checkpoint does."""

from __future__ import annotations

import time

from detectors.base import Finding, Severity, SignalChange
from monitor.audit.chain import write_transaction
from monitor.incidents import signal_states
from monitor.incidents.grouping import AlertPolicy
from monitor.store.store import Store


def fire(
    store: Store,
    model: str,
    signal: str,
    detector: str = "ks",
    p_value: float = 1e-6,
    event_ts: float = 1_764_140_000.0,
    severity: Severity = "warning",
) -> None:
    """The signal fires, with its alert (filed under an incident)."""
    finding = Finding(
        detector=detector,
        signal=signal,
        event_ts=event_ts,
        severity=severity,
        statistic=0.31,
        threshold=0.2,
        p_value=p_value,
        effect_size=0.4,
        details={"window_events": 1000, "window_start_ts": event_ts - 600.0},
    )
    change = SignalChange(
        "fired",
        detector,
        signal,
        event_ts,
        severity,
        True,
        0.31,
        0.2,
        p_value,
        0.4,
    )
    with write_transaction(store.db) as db:
        signal_states.apply(db, model, [change], [finding], AlertPolicy(), time.time())


def evaluate(
    store: Store,
    model: str,
    signal: str,
    p_value: float,
    detector: str = "ks",
    event_ts: float = 1_764_140_000.0,
) -> None:
    """One windowed test of the signal, within its baseline: its latest figures, no state change."""
    change = SignalChange(
        "tested", detector, signal, event_ts, "info", False, 0.05, 0.2, p_value, 0.01
    )
    with write_transaction(store.db) as db:
        signal_states.apply(db, model, [change], [], AlertPolicy(), time.time())


def resolve(
    store: Store, model: str, signal: str, detector: str = "ks", event_ts: float = 1_764_150_000.0
) -> None:
    """The signal is ok again; incidents none of whose signals fires resolve."""
    change = SignalChange("resolved", detector, signal, event_ts)
    with write_transaction(store.db) as db:
        signal_states.apply(db, model, [change], [], AlertPolicy(), time.time())
