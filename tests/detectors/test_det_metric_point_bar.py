"""metric_anomaly's spike/dip bar where the seasonal forecasts agree: clean
seasonal series at several cadences (Poisson counts and Gaussian noise on a
daily cycle) raise no more spikes or dips than the false-alarm budget allows
once the season is known, and a spike of a few noise units at the daily peak
(where the forecasts agree) is still found (seeded)."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.metric.anomaly import MetricAnomaly

T0 = 1.7e9
DAY = 86400.0
BUDGET = 2e4  # points between false alarms: small, so that 144,000 points test it
JUDGED = 8000  # points judged per series, after two days (the season known)


def _clean(seed: int, cadence: float, n: int, noise: str) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ts = T0 + cadence * np.arange(n, dtype=np.float64)
    day = np.sin(2 * np.pi * (ts - T0) / DAY)
    if noise == "poisson":  # noise that grows with the level (sd 14 to 28)
        return ts, rng.poisson(500 + 300 * day).astype(np.float64)
    return ts, 100 + 30 * day + rng.normal(0, 3, n)


def _points_told(det: MetricAnomaly, ts: np.ndarray, x: np.ndarray) -> list[int]:
    told: list[int] = []
    for start in range(0, ts.shape[0], 500):
        events = det.update_at(ts[start : start + 500], x[start : start + 500])
        told += [start + e.index for e in events if e.details["kind"] in ("spike", "dip")]
    return told


@pytest.mark.slow
def test_clean_seasonal_series_keep_the_point_budget() -> None:
    # (before the point was judged in one seasonal forecast's noise too, the
    # same 18 series raised 44 spikes and dips here: the bar, learnt from the
    # weakest of the forecasts' errors, was about 4 standard deviations of
    # one forecast's where the forecasts agree)
    told: dict[str, list[int]] = {}
    for cadence in (10.0, 60.0, 300.0):
        start = int(2 * DAY / cadence)
        for noise in ("poisson", "gauss"):
            for seed in range(3):
                ts, x = _clean(seed, cadence, start + JUDGED, noise)
                found = _points_told(MetricAnomaly(false_alarm_events=BUDGET), ts, x)
                told[f"{cadence:g}s {noise} {seed}"] = [i for i in found if i >= start]
    total = sum(len(v) for v in told.values())
    assert total <= 18 * JUDGED / BUDGET, told


def test_a_spike_at_the_daily_peak_is_still_found() -> None:
    # 10 Poisson standard deviations at the level of 800, at the third day's
    # peak (6 h into the day), where the forecasts agree; 9 of the 10 found
    # before the point was judged in one forecast's noise too, 8 since (the
    # one lost: at 5 minutes, whose point tail has learnt from 2 days only)
    found = 0
    for cadence in (60.0, 300.0):
        for seed in range(5):
            ts, x = _clean(seed, cadence, int(3 * DAY / cadence), "poisson")
            at = int((2 * DAY + DAY / 4) / cadence)
            x[at] += 10 * np.sqrt(800)
            found += at + 1 in _points_told(MetricAnomaly(), ts, x)  # told at the next point
    assert found >= 8
