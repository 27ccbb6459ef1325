"""The store's figures in /metrics: incidents by model, status and kind; alerts; signals."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from detectors.base import Finding
from monitor.daemon.ops import DaemonMetrics
from monitor.daemon.store_figures import StoreFigures
from monitor.store.store import Store
from tests.signal_support import evaluate, fire, resolve

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _samples(registry: CollectorRegistry) -> Samples:
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _figures(store: Store, **kwargs: object) -> CollectorRegistry:
    registry = CollectorRegistry()
    kwargs.setdefault("refresh_seconds", 0.0)
    registry.register(StoreFigures(str(store.path), ["fraud", "churn"], **kwargs))  # type: ignore[arg-type]
    return registry


def _label(**labels: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


def test_every_configured_model_has_its_series_before_any_alert(store: Store) -> None:
    samples = _samples(_figures(store))
    for model in ("fraud", "churn"):
        for severity in ("info", "warning", "critical"):
            key = ("driftwarden_alerts_total", _label(model=model, severity=severity))
            assert samples[key] == 0
        for kind in ("drift", "output", "performance", "client", "metric"):
            for status in ("open", "acknowledged", "resolved"):
                key = ("driftwarden_incidents", _label(model=model, status=status, kind=kind))
                assert samples[key] == 0


def test_daemon_metrics_read_the_store_for_the_configured_models(store: Store) -> None:
    metrics = DaemonMetrics(store_path=str(store.path), models=["fraud"])
    samples = _samples(metrics.registry)
    assert samples[("driftwarden_alerts_total", _label(model="fraud", severity="warning"))] == 0
    # The process's own counter has its own name: no second driftwarden_alerts family.
    assert not any(name == "driftwarden_alerts_written_total" for name, _ in samples)


def test_figures_follow_the_incident_lifecycle(
    store: Store, record: Callable[..., int], make_finding: Callable[..., Finding]
) -> None:
    registry = _figures(store)
    record(store, "fraud", make_finding(event_ts=1e9))
    record(store, "churn", make_finding(event_ts=1e9, signal="score", severity="critical"))
    opened = store.db.execute("SELECT opened_at FROM incidents WHERE model = 'fraud'").fetchone()[0]
    with store.transaction() as db:
        db.execute(
            "UPDATE incidents SET status = 'acknowledged', acknowledged_at = ? "
            "WHERE model = 'fraud'",
            [opened + 120.0],
        )
    samples = _samples(registry)
    incidents = "driftwarden_incidents"
    assert samples[(incidents, _label(model="fraud", status="acknowledged", kind="drift"))] == 1
    assert samples[(incidents, _label(model="fraud", status="open", kind="drift"))] == 0
    assert samples[(incidents, _label(model="churn", status="open", kind="output"))] == 1
    assert samples[(incidents, _label(model="churn", status="open", kind="drift"))] == 0
    alerts = "driftwarden_alerts_total"
    assert samples[(alerts, _label(model="fraud", severity="warning"))] == 1
    assert samples[(alerts, _label(model="churn", severity="critical"))] == 1
    assert samples[(alerts, _label(model="churn", severity="warning"))] == 0
    # make_finding dates each window's start 600 s of event time before its alert.
    assert samples[("driftwarden_incident_time_to_detect_seconds_count", ())] == 2
    assert samples[("driftwarden_incident_time_to_detect_seconds_sum", ())] == 1200.0
    assert samples[("driftwarden_incident_time_to_acknowledge_seconds_count", ())] == 1
    assert abs(samples[("driftwarden_incident_time_to_acknowledge_seconds_sum", ())] - 120) < 1e-6
    assert samples[("driftwarden_incident_time_to_resolve_seconds_count", ())] == 0


def test_signal_gauges_carry_the_latest_figures_and_the_firing_flag(store: Store) -> None:
    registry = _figures(store)
    fire(store, "fraud", "feature:amount", p_value=1e-7)
    evaluate(store, "fraud", "feature:age", p_value=0.42)
    samples = _samples(registry)
    amount = _label(model="fraud", detector="ks", signal="amount")
    age = _label(model="fraud", detector="ks", signal="age")
    assert samples[("driftwarden_signal_firing", amount)] == 1
    assert samples[("driftwarden_signal_firing", age)] == 0
    assert samples[("driftwarden_signal_p_value", amount)] == 1e-7
    assert samples[("driftwarden_signal_p_value", age)] == 0.42
    assert samples[("driftwarden_signal_effect_size", amount)] == 0.4
    assert samples[("driftwarden_signal_statistic", age)] == 0.05
    assert samples[("driftwarden_signals", _label(model="fraud", state="firing"))] == 1
    resolve(store, "fraud", "feature:amount")
    samples = _samples(registry)
    assert samples[("driftwarden_signal_firing", amount)] == 0
    assert (
        samples[("driftwarden_incidents", _label(model="fraud", status="resolved", kind="drift"))]
        == 1
    )


def test_signal_series_are_bounded_firing_first_then_lowest_p_values(store: Store) -> None:
    registry = _figures(store, max_signal_series=3)
    for i in range(8):
        evaluate(store, "fraud", f"feature:f{i}", p_value=0.1 + i / 100)
    fire(store, "fraud", "feature:f7", p_value=0.5)  # firing, though its p-value is the highest
    for i in range(2):
        evaluate(store, "churn", f"feature:c{i}", p_value=0.9)
    samples = _samples(registry)
    shown = {
        (dict(labels)["model"], dict(labels)["signal"])
        for name, labels in samples
        if name == "driftwarden_signal_firing"
    }
    assert shown == {
        ("fraud", "f7"),
        ("fraud", "f0"),
        ("fraud", "f1"),
        ("churn", "c0"),
        ("churn", "c1"),
    }
    assert samples[("driftwarden_signals", _label(model="fraud", state="ok"))] == 7


def test_the_store_is_read_at_most_once_per_refresh_interval(store: Store) -> None:
    registry = _figures(store, refresh_seconds=2.0)
    key = ("driftwarden_alerts_total", _label(model="fraud", severity="warning"))
    assert _samples(registry)[key] == 0
    fire(store, "fraud", "feature:amount")
    assert _samples(registry)[key] == 0  # the last read's figures until the interval passes
    time.sleep(2.1)
    assert _samples(registry)[key] == 1


def test_a_failed_read_keeps_the_last_figures_instead_of_zeros(store: Store) -> None:
    registry = _figures(store)
    fire(store, "fraud", "feature:amount")
    key = ("driftwarden_alerts_total", _label(model="fraud", severity="warning"))
    assert _samples(registry)[key] == 1
    with store.transaction() as db:
        db.execute("ALTER TABLE alerts RENAME TO alerts_elsewhere")
    assert _samples(registry)[key] == 1  # not 0: the store could not be read


def test_a_store_not_yet_created_gives_zeros(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    registry.register(StoreFigures(str(tmp_path / "later.db"), ["fraud"], refresh_seconds=0))
    samples = _samples(registry)
    assert samples[("driftwarden_alerts_total", _label(model="fraud", severity="info"))] == 0
    assert not (tmp_path / "later.db").exists()
