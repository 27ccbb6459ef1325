"""Incident figures in /metrics: counts by status and time to detect, acknowledge, resolve."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from detectors.base import Finding
from monitor.daemon.ops import DaemonMetrics
from monitor.store.store import Store


def _samples(metrics: DaemonMetrics) -> dict[tuple[str, str], float]:
    text = generate_latest(metrics.registry).decode()
    return {
        (sample.name, sample.labels.get("status", "")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_figures_follow_the_incident_lifecycle(
    store: Store, record: Callable[..., int], make_finding: Callable[..., Finding]
) -> None:
    metrics = DaemonMetrics(store_path=str(store.path))
    assert _samples(metrics)[("driftwarden_incidents", "open")] == 0
    record(store, "fraud", make_finding(event_ts=1e9))
    record(store, "churn", make_finding(event_ts=1e9))
    opened = store.db.execute("SELECT opened_at FROM incidents WHERE model = 'fraud'").fetchone()[0]
    with store.transaction() as db:
        db.execute(
            "UPDATE incidents SET status = 'acknowledged', acknowledged_at = ? "
            "WHERE model = 'fraud'",
            [opened + 120.0],
        )
    samples = _samples(metrics)
    assert samples[("driftwarden_incidents", "open")] == 1
    assert samples[("driftwarden_incidents", "acknowledged")] == 1
    # make_finding dates each window's start 600 s of event time before its alert.
    assert samples[("driftwarden_incident_time_to_detect_seconds_count", "")] == 2
    assert samples[("driftwarden_incident_time_to_detect_seconds_sum", "")] == 1200.0
    assert samples[("driftwarden_incident_time_to_acknowledge_seconds_count", "")] == 1
    assert abs(samples[("driftwarden_incident_time_to_acknowledge_seconds_sum", "")] - 120) < 1e-6
    assert samples[("driftwarden_incident_time_to_resolve_seconds_count", "")] == 0
