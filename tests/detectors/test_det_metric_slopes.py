"""metric_anomaly and a new slope in a series without a season: a gentle
ramp the Holt forecast would learn in silence found against a slow
reference level, white and strongly dependent noise still quiet (seeded)."""

from __future__ import annotations

import json

import numpy as np

from detectors.metric.anomaly import MetricAnomaly
from detectors.metric.drift import Drift

T0 = 1.7e9
N, AT = 3000, 1500  # points at a 1-minute cadence (two days), where a ramp starts


def _times() -> np.ndarray:
    return T0 + 60.0 * np.arange(N, dtype=np.float64)


def _ramp(seed: int) -> np.ndarray:
    """White noise of sd 5, then a slope of 0.04 noise units a point (6 units
    after 150 points: the forecast follows it within ~1 unit)."""
    rng = np.random.default_rng(seed)
    x = 100 + rng.normal(0, 5, N)
    x[AT:] += 0.04 * 5 * np.arange(N - AT)
    return x


def test_a_gentle_ramp_without_a_season_is_found_within_150_points() -> None:
    # none of these was found before the slow reference watched slopes
    found = 0
    for seed in range(10):
        events = MetricAnomaly().update_at(_times(), _ramp(seed))
        found += any(AT <= e.index <= AT + 150 for e in events)
        assert all(e.index >= AT for e in events)
    assert found >= 8


def test_white_and_strongly_dependent_noise_without_a_season_stay_quiet() -> None:
    alerts = 0
    for seed in range(10):
        rng = np.random.default_rng(100 + seed)
        alerts += len(MetricAnomaly().update_at(_times(), 100 + rng.normal(0, 5, N)))
        shocks = rng.normal(0, 5, N)
        ar = np.empty(N)
        ar[0] = shocks[0]
        for i in range(1, N):  # AR(1), phi 0.8: a level that wanders for tens of points
            ar[i] = 0.8 * ar[i - 1] + 0.6 * shocks[i]
        alerts += len(MetricAnomaly().update_at(_times(), 100 + ar))
    assert alerts == 0


def test_the_reference_restarts_as_a_running_mean_then_moves_slowly() -> None:
    drift = Drift()
    drift.rebase(10.0)
    for _ in range(240):  # anchoring: the mean of the points since the restart
        drift.follow(12.0 - drift.level, clip=100.0, rate=0.001)
    assert abs(drift.level - 12.0) < 1e-9
    drift.follow(100.0 - drift.level, clip=3.0, rate=0.001)  # then clipped and slow
    assert abs(drift.level - 12.003) < 1e-9


def test_the_reference_survives_save_and_load_and_older_states_load_without_it() -> None:
    x = _ramp(3)
    ts = _times()
    whole = MetricAnomaly().update_at(ts, x)
    first = MetricAnomaly()
    first.update_at(ts[:1200], x[:1200])
    state = json.loads(json.dumps(first.dump()))
    resumed = MetricAnomaly.load(state).update_at(ts[1200:], x[1200:])
    assert [(e.index + 1200, e.details["kind"]) for e in resumed] == [
        (e.index, e.details["kind"]) for e in whole
    ]
    assert whole  # the ramp was found
    del state["drift"]
    older = MetricAnomaly.load(state)
    assert older.dump()["drift"]["level"] == state["model"][2]  # from the slow level
