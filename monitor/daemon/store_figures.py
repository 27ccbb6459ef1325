"""What /metrics reads from the store: incidents, alerts and the signals' latest figures.

Read-only, and at most once per ``refresh_seconds`` however often Prometheus
scrapes: between reads a scrape gets the figures of the last read. Every
family is present from the first scrape, with a zero sample for each
configured model, so that rate() and alert rules see a series before the
first alert, not only after it.

Series are bounded: per model at most ``max_signal_series`` signals get the
``driftwarden_signal_*`` gauges, the firing ones first, then the lowest
p-values (``driftwarden_signals`` still counts them all).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)

from monitor.incidents.kinds import KINDS

log = logging.getLogger("driftwarden.metrics")
STATUSES = ("open", "acknowledged", "resolved")
SEVERITIES = ("info", "warning", "critical")
REFRESH_SECONDS = 5.0
MAX_SIGNAL_SERIES = 50

# The signals of each model that get gauges: firing first, then the lowest p-values.
_RANKED_SIGNALS = """
SELECT model, detector, signal, state, p_value, statistic, effect_size FROM (
    SELECT *, row_number() OVER (
        PARTITION BY model
        ORDER BY state = 'firing' DESC, p_value IS NULL, p_value, detector, signal
    ) AS rank FROM signal_state
) WHERE rank <= ? ORDER BY model, detector, signal
"""


class StoreFigures:
    """A Prometheus collector of the store's figures, refreshed at a bounded cadence."""

    def __init__(
        self,
        store_path: str,
        models: Sequence[str] = (),
        max_signal_series: int = MAX_SIGNAL_SERIES,
        refresh_seconds: float = REFRESH_SECONDS,
    ) -> None:
        self.store_path = store_path
        self.models = list(models)
        self.max_signal_series = max_signal_series
        self.refresh_seconds = refresh_seconds
        self._lock = threading.Lock()
        self._read_at = -float("inf")
        self._families: list[Metric] = []

    def collect(self) -> Iterator[Metric]:
        with self._lock:  # concurrent scrapes share one read
            if time.monotonic() - self._read_at >= self.refresh_seconds:
                try:
                    self._families = self._read()
                except sqlite3.Error as exc:
                    # Zeros would read as "no incidents": keep the last figures and say why.
                    log.warning("reading the store for /metrics failed", extra={"error": str(exc)})
                    if not self._families:
                        self._families = self._zeros()
                self._read_at = time.monotonic()
            families = list(self._families)
        yield from families

    def _zeros(self) -> list[Metric]:
        return self._figures(None)

    def _read(self) -> list[Metric]:
        uri = f"{Path(self.store_path).resolve().as_uri()}?mode=ro"
        if not Path(self.store_path).exists():
            return self._zeros()  # the first checkpoint creates it
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=2)) as db:
            return self._figures(db)

    def _figures(self, db: sqlite3.Connection | None) -> list[Metric]:
        incidents: dict[tuple[str, str, str], int] = {
            (m, s, k): 0 for m in self.models for s in STATUSES for k in KINDS
        }
        alerts = {(m, s): 0 for m in self.models for s in SEVERITIES}
        states: dict[tuple[str, str], int] = {
            (m, s): 0 for m in self.models for s in ("ok", "firing")
        }
        spans: dict[str, list[float]] = {name: [] for name in _SPANS}
        signals: list[tuple[str, str, str, str, float | None, float | None, float | None]] = []
        if db is not None:
            for model, status, kind, count in db.execute(
                "SELECT model, status, coalesce(kind, 'drift'), count(*) FROM incidents "
                "GROUP BY 1, 2, 3"
            ):
                incidents[(model, status, kind)] = count
            for model, severity, count in db.execute(
                "SELECT model, severity, count(*) FROM alerts GROUP BY 1, 2"
            ):
                alerts[(model, severity)] = count
            for model, state, count in db.execute(
                "SELECT model, state, count(*) FROM signal_state GROUP BY 1, 2"
            ):
                states[(model, state)] = count
            signals = db.execute(_RANKED_SIGNALS, [self.max_signal_series]).fetchall()
            _read_spans(db, spans)
        return [
            *_incident_families(incidents, spans),
            _alert_family(alerts),
            *_signal_families(states, signals),
        ]


_SPANS = {
    "time_to_detect": "Onset to first alert, in event time",
    "time_to_acknowledge": "Opened to acknowledged, wall clock",
    "time_to_resolve": "Opened to resolved, wall clock",
}


def _read_spans(db: sqlite3.Connection, spans: dict[str, list[float]]) -> None:
    """Time to detect is in event time (first alert minus the onset the detector
    estimated: the start of the window that showed the change); acknowledge and
    resolve are wall-clock times since the incident opened."""
    for ack, resolve in db.execute(
        "SELECT acknowledged_at - opened_at, resolved_at - opened_at FROM incidents"
    ):
        if ack is not None:
            spans["time_to_acknowledge"].append(ack)
        if resolve is not None:
            spans["time_to_resolve"].append(resolve)
    for (detect,) in db.execute(
        "SELECT i.first_event_ts - min(json_extract(a.details, '$.window_start_ts')) "
        "FROM incidents i JOIN alerts a ON a.incident_id = i.id GROUP BY i.id"
    ):
        if detect is not None:
            spans["time_to_detect"].append(detect)


def _incident_families(
    incidents: dict[tuple[str, str, str], int], spans: dict[str, list[float]]
) -> Iterator[Metric]:
    family = GaugeMetricFamily(
        "driftwarden_incidents",
        "Incidents in the store, by model, status and kind",
        labels=["model", "status", "kind"],
    )
    for labels, count in sorted(incidents.items()):
        family.add_metric(list(labels), count)
    yield family
    for name, text in _SPANS.items():
        summary = SummaryMetricFamily(f"driftwarden_incident_{name}_seconds", text)
        summary.add_metric([], count_value=len(spans[name]), sum_value=sum(spans[name]))
        yield summary


def _alert_family(alerts: dict[tuple[str, str], int]) -> Metric:
    family = CounterMetricFamily(
        "driftwarden_alerts",
        "Alerts in the store, by model and severity",
        labels=["model", "severity"],
    )
    for labels, count in sorted(alerts.items()):
        family.add_metric(list(labels), count)
    return family


def _signal_families(
    states: dict[tuple[str, str], int],
    signals: list[tuple[str, str, str, str, float | None, float | None, float | None]],
) -> Iterator[Metric]:
    counts = GaugeMetricFamily(
        "driftwarden_signals",
        "Signals (model x detector x signal) by state, all of them",
        labels=["model", "state"],
    )
    for labels, count in sorted(states.items()):
        counts.add_metric(list(labels), count)
    yield counts
    names = ["model", "detector", "signal"]
    firing = GaugeMetricFamily(
        "driftwarden_signal_firing", "1 while the signal fires, else 0", labels=names
    )
    p_value = GaugeMetricFamily(
        "driftwarden_signal_p_value", "The signal's latest p-value", labels=names
    )
    statistic = GaugeMetricFamily(
        "driftwarden_signal_statistic",
        "The signal's latest test statistic (or score)",
        labels=names,
    )
    effect = GaugeMetricFamily(
        "driftwarden_signal_effect_size", "The signal's latest effect size", labels=names
    )
    for model, detector, signal, state, p, stat, size in signals:
        key = [model, detector, signal]
        firing.add_metric(key, 1.0 if state == "firing" else 0.0)
        for family, value in ((p_value, p), (statistic, stat), (effect, size)):
            if value is not None:
                family.add_metric(key, value)
    yield from (firing, p_value, statistic, effect)
