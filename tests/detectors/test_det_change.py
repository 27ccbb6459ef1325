"""Sequential change detectors and metric anomalies: false alarm rate on
stationary streams within a bound, detection delay on a known shift within a bound."""

from __future__ import annotations

import json
from importlib.metadata import version
from typing import Any, cast

import numpy as np
import pytest
from river import drift

from detectors import registry
from detectors.change.base import BlockChangeDetector
from detectors.metric.anomaly import MetricAnomaly

CHANGE = registry.names("change")
TARGET = 5e4  # events between false alarms asked for


def _stream(kind: str, n: int, seed: int) -> tuple[np.ndarray, float]:
    rng = np.random.default_rng(seed)
    if kind == "normal":
        return rng.normal(size=n), 0.0
    return rng.exponential(size=n), 1.0  # skewed: block means keep the calibration


@pytest.mark.parametrize("kind", ["normal", "exponential"])
@pytest.mark.parametrize("name", CHANGE)
def test_false_alarm_rate_matches_the_target(name: str, kind: str) -> None:
    n = 2_000_000
    x, mean = _stream(kind, n, seed=1)
    det = cast(BlockChangeDetector, registry.get(name).factory(false_alarm_events=TARGET))
    det.calibrate(mean, 1.0, reference_size=10**9)  # known baseline: test the threshold alone
    alarms = len(det.update(x))
    expected = n / TARGET
    if name == "adwin":  # Hoeffding-type bound: conservative by design
        assert alarms <= expected
    else:  # mean run length within a factor of three of the target (Alibi Detect's bar)
        assert expected / 3 <= alarms <= expected * 3


@pytest.mark.parametrize("name", CHANGE)
def test_estimated_reference_keeps_false_alarms_down(name: str) -> None:
    x, _ = _stream("normal", 1_000_000, seed=2)
    det: Any = registry.get(name).factory(
        false_alarm_events=1e6
    )  # warms up on its first 1000 values
    assert len(det.update(x)) <= 3


@pytest.mark.parametrize("name", CHANGE)
def test_detection_delay_of_a_half_sigma_shift(name: str) -> None:
    x, _ = _stream("normal", 200_000, seed=3)
    x[100_000:] += 0.5
    det: Any = registry.get(name).factory()  # default target: 1e7 events between false alarms
    events = det.update(x)
    assert events and all(e.index >= 100_000 for e in events)
    assert events[0].index - 100_000 < 1500
    assert events[0].effect_size == pytest.approx(0.5, abs=0.35)
    assert events[0].details["direction"] == "up"


@pytest.mark.parametrize("name", CHANGE)
def test_batch_split_and_restore_give_the_same_events(name: str) -> None:
    x, _ = _stream("normal", 60_000, seed=4)
    x[30_000:] -= 0.4
    x[::97] = np.nan
    whole = registry.get(name).factory(false_alarm_events=1e5).update(x)  # type: ignore[attr-defined]
    det: Any = registry.get(name).factory(false_alarm_events=1e5)
    pieces = []
    for start in range(0, x.shape[0], 777):
        pieces += [(e.index + start, e) for e in det.update(x[start : start + 777])]
        det = registry.get(name).loader(json.loads(json.dumps(det.dump(), allow_nan=False)))
    assert [i for i, _ in pieces] == [e.index for e in whole]
    assert [e.statistic for _, e in pieces] == [e.statistic for e in whole]


def _seasonal(n: int, seed: int) -> np.ndarray:
    """Latency-like: daily cycle (1440 points), log-normal noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return (80 + 30 * np.sin(2 * np.pi * t / 1440)) * rng.lognormal(0, 0.15, n)


def test_metric_anomaly_quiet_on_a_seasonal_series() -> None:
    det = MetricAnomaly()
    assert det.update(_seasonal(100_000, seed=5)) == []


def test_metric_anomaly_quiet_on_counts_and_rates() -> None:
    rng = np.random.default_rng(6)
    qps = rng.poisson(200 + 100 * np.sin(np.arange(100_000) * 2 * np.pi / 1440)).astype(float)
    errors = rng.binomial(1000, 0.01, 100_000) / 1000  # an error rate, zeros included
    assert MetricAnomaly().update(qps) == []
    assert len(MetricAnomaly().update(errors)) <= 1


def test_metric_anomaly_finds_spike_level_shift_and_flatline() -> None:
    x = _seasonal(20_000, seed=7)
    x[5000] *= 6  # spike
    x[10_000:] *= 1.8  # level shift
    x[15_000:15_100] = x[14_999]  # stuck exporter
    events = MetricAnomaly().update(x)
    first: dict[str, int] = {}
    for e in events:
        first.setdefault(e.details["kind"], e.index)
    assert first["spike"] == 5000
    assert 0 <= first["level_shift"] - 10_000 < 15
    assert first["flatline"] == 14_999 + 29  # the run starts at the copied value
    assert all(e.index >= 5000 for e in events)


@pytest.mark.parametrize("name", ["adwin", "page_hinkley"])
def test_river_state_of_another_version_restarts_detection_with_a_warning(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    x, _ = _stream("normal", 30_000, seed=4)
    x[20_000:] += 1.0
    det: Any = registry.get(name).factory(false_alarm_events=1e6)
    det.update(x[:15_000])
    state = json.loads(json.dumps(det.dump()))
    river_state = state["extra"][name]
    assert river_state["river"] == version("river")
    assert isinstance(det._adwin if name == "adwin" else det._ph, drift.ADWIN | drift.PageHinkley)
    # same version: exact continuation
    same: Any = registry.get(name).loader(state)
    assert [e.index for e in same.update(x[15_000:])] == [e.index for e in det.update(x[15_000:])]
    # another version: River's detector restarts, calibration kept, a warning logged
    river_state["river"] = "0.0.1"
    with caplog.at_level("WARNING", logger="detectors.change"):
        other: Any = registry.get(name).loader(state)
    assert "written by River 0.0.1" in caplog.text
    fresh: Any = registry.get(name).factory(false_alarm_events=1e6)
    fresh.calibrate(det._mean, det._std, None, det._ref_n)
    assert json.dumps(other.dump()["extra"][name]) == json.dumps(fresh.dump()["extra"][name])
    assert other.dump()["mean"] == state["mean"]
    found = other.update(x[15_000:])
    assert found and found[0].index >= 5_000, "a restarted detector still finds the shift"
