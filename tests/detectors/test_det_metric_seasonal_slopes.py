"""metric_anomaly and a new slope in a seasonal series: a gentle ramp in
daily Poisson counts found (its window sums and noise scales learn from its
build-up, the slope test's reference does not); clean daily series, and the
echo of a flat-line a day later, stay quiet (seeded)."""

from __future__ import annotations

import json

import numpy as np

from detectors.metric.anomaly import MetricAnomaly
from detectors.metric.drift import LAG, Drift

T0 = 1.7e9
DAY = 86400.0
CADENCE = 300.0  # 5 minutes: 288 points a day
AT = 2000  # where a ramp starts (day 7)


def _times(n: int) -> np.ndarray:
    return T0 + CADENCE * np.arange(n, dtype=np.float64)


def _counts(seed: int, n: int, slope: float = 0.0) -> np.ndarray:
    """Poisson counts of mean 40 + 30 sin(day); from ``AT`` the mean rises by
    ``slope`` Poisson standard deviations (at 40) a point."""
    rng = np.random.default_rng(seed)
    day = 2 * np.pi * (_times(n) - T0) / DAY
    mean = 40 + 30 * np.sin(day)
    mean[AT:] += slope * np.sqrt(40.0) * np.arange(n - AT)
    return rng.poisson(mean).astype(float)


def test_a_gentle_ramp_in_daily_counts_is_found_within_300_points() -> None:
    # 0.02 sd a point: 6 sd after 300 points, about 5.5 sd a day; none of
    # the ten was found before the slope test watched seasonal series
    found = 0
    for seed in range(10):
        events = MetricAnomaly().update_at(_times(2880), _counts(seed, 2880, 0.02))
        assert all(e.index >= AT for e in events)
        first = [e for e in events if AT <= e.index <= AT + 300]
        found += bool(first) and first[0].details["kind"] == "trend_change"
    assert found >= 8


def test_clean_daily_series_stay_quiet() -> None:
    alerts = []
    for seed in range(8):
        rng = np.random.default_rng(100 + seed)
        day = 2 * np.pi * (_times(4032) - T0) / DAY
        sine = 100 + 30 * np.sin(day) + rng.normal(0, 3, 4032)
        square = 100 + 30 * np.sign(np.sin(day)) + rng.normal(0, 3, 4032)
        for x in (_counts(100 + seed, 4032), sine, square):
            alerts += MetricAnomaly().update_at(_times(4032), x)
    assert [(e.index, e.details["kind"]) for e in alerts] == []


def test_a_flat_line_echoes_no_slope_a_day_later() -> None:
    # the season's buckets hold the stuck values: a day later every seasonal
    # forecast is off by the day's swing there, on one side, like a ramp
    # (the stuck run itself is told as a flat-line); at 1 minute, 8 seeds:
    # 13 echoes told as trend changes without the echo's wait, 1 with it
    told, echoes = 0, []
    n, at = 7000, 3000
    ts = T0 + 60.0 * np.arange(n, dtype=np.float64)
    for seed in range(8):
        rng = np.random.default_rng(200 + seed)
        x = 100 + 30 * np.sin(2 * np.pi * (ts - T0) / DAY) + rng.normal(0, 3, n)
        x[at : at + 240] = x[at - 1]
        events = MetricAnomaly().update_at(ts, x)
        told += any(at <= e.index <= at + 240 for e in events)
        echoes += [(e.index, e.details["kind"]) for e in events if e.index > at + 240]
    assert told == 8
    assert len(echoes) <= 2


def test_windows_are_learnt_late_in_the_largest_recent_noise_scale() -> None:
    drift = Drift()
    # the first window closes when 60 deviations are in, then one every 60
    for i in range(60 * (LAG + 2) - 1):
        drift.add(0.0, 1.0 + (i // 60), bar=1e9)  # a scale that grows each window
    assert drift.windows == 1  # one window learnt: LAG + 1 closed
    assert drift.scales == [3.0, 4.0, 5.0, 6.0]
    drift.add(8.0, 100.0, bar=1e9)
    assert drift.devs[-1] == 8.0 / 6.0  # judged in the largest lagged scale, not 100
    drift.rebase(0.0)  # a confirmed shift: the windows not learnt are dropped
    assert drift.pending == [] and drift.scales == [] and drift.windows == 1


def test_the_seasonal_slope_state_survives_save_and_load() -> None:
    x, ts = _counts(3, 2880, 0.02), _times(2880)
    whole = MetricAnomaly().update_at(ts, x)
    first = MetricAnomaly()
    first.update_at(ts[:2100], x[:2100])
    state = json.loads(json.dumps(first.dump()))
    assert len(state["drift"]["pending"][0]) <= LAG
    resumed = MetricAnomaly.load(state).update_at(ts[2100:], x[2100:])
    assert [(e.index + 2100, e.details["kind"]) for e in resumed] == [
        (e.index, e.details["kind"]) for e in whole
    ]
    assert whole  # the ramp was found
    # states saved before: windows learnt at once, no episode known
    del state["drift"]["pending"], state["episode_t"]
    older = MetricAnomaly.load(state)
    assert older.dump()["drift"]["pending"] == [[], []]
    assert older.dump()["episode_t"] == "-inf"
