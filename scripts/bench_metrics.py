"""Benchmark the metric anomaly detector on a labelled synthetic corpus.

Seeded series at cadences from 10 seconds to an hour: daily and weekly
seasonality, noise levels and scales from 1e-2 to 1e4, trend, irregular and
jittered timestamps with missing points, and injected anomalies of every kind
(spike, dip, level_shift, trend_change, variance_change, flat_line, gap),
plus clean series (sine, square wave, Poisson counts, bursty tweet-like
counts, log-normal latency). Each series is fed as ``metric`` points to a
metric series of the default suite settings (``MetricSeries``: the default
detector, the suite's false-alarm budget and its alarm states), in batches.

Scored the way public anomaly benchmarks score: a window after each true
anomaly (5% of the series, at least 30 points); the first alert inside it
detects the anomaly (its delay is counted), every alert outside every window
is a false positive. Precision = detected windows / (detected windows + false
positives); recall = detected windows / anomalies. A rolling z-score (mean and
standard deviation of the 120 points before, the same false-alarm budget as a
normal quantile, one alert per excursion like the suite's alarm states) runs
on the same corpus for comparison; its ratio to ours is printed.

    .venv/bin/python scripts/bench_metrics.py [--seed 1] [--batch 200]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy import special

from detectors.metric.series import MetricSeries
from detectors.suite.settings import SuiteSettings

DAY = 86400.0
KINDS = ("spike", "dip", "level_shift", "trend_change", "variance_change", "flat_line", "gap")
T0 = 1.7e9


@dataclass
class Series:
    name: str
    ts: np.ndarray
    values: np.ndarray
    onsets: list[float] = field(default_factory=list)  # event times of true anomalies
    kinds: list[str] = field(default_factory=list)


def base_series(rng: np.random.Generator, shape: str, n: int, cadence: float) -> Series:
    """A clean series of ``shape`` with ``n`` points ``cadence`` seconds apart."""
    ts = T0 + cadence * np.arange(n, dtype=np.float64)
    day = 2 * np.pi * (ts - T0) / DAY
    week = 2 * np.pi * (ts - T0) / (7 * DAY)
    scale = 10 ** rng.uniform(-2, 4)
    if shape == "sine":
        v = 100 + 30 * np.sin(day) + rng.normal(0, 3, n)
    elif shape == "square":
        v = 100 + 30 * np.sign(np.sin(day)) + rng.normal(0, 3, n)
    elif shape == "poisson":
        v = rng.poisson(40 + 30 * np.sin(day)).astype(float)
    elif shape == "tweets":  # bursty counts: a gamma-mixed Poisson with a daily cycle
        mean = 20 * (1.5 + np.sin(day)) * rng.gamma(4, 0.25, n)
        v = rng.poisson(mean).astype(float)
    elif shape == "latency":
        v = (80 + 30 * np.sin(day)) * rng.lognormal(0, 0.15, n)
    elif shape == "weekly":  # CPU: a weekday/weekend pattern over the daily one
        v = 50 + 15 * np.sin(day) + 10 * np.sign(np.sin(week)) + rng.normal(0, 2, n)
    elif shape == "trend":
        v = 100 + 20 * np.sin(day) + np.linspace(0, 40, n) + rng.normal(0, 3, n)
    else:  # "noise": no season at all
        v = 100 + rng.normal(0, 5, n)
    return Series(shape, ts, v * scale)


def irregular(rng: np.random.Generator, s: Series, cadence: float) -> Series:
    """Jittered timestamps (±40% of the cadence) and 10% of the points missing."""
    keep = rng.random(s.ts.shape[0]) > 0.1
    ts = s.ts + rng.uniform(-0.4, 0.4, s.ts.shape[0]) * cadence
    return Series(s.name + "+irregular", ts[keep], s.values[keep])


def inject(rng: np.random.Generator, s: Series, kind: str, at: int) -> None:
    v, n = s.values, s.values.shape[0]
    noise = float(np.median(np.abs(np.diff(v)))) / 0.95 + 1e-12
    level = float(np.median(np.abs(v))) + noise
    if kind == "spike":
        v[at] += max(12 * noise, 0.8 * level)
    elif kind == "dip":
        v[at] -= max(12 * noise, 0.6 * level)
    elif kind == "level_shift":
        v[at:] += max(6 * noise, 0.4 * level) * rng.choice([-1, 1])
    elif kind == "trend_change":
        ramp = np.arange(n - at) * max(6 * noise, 0.4 * level) / 200
        v[at:] += ramp
    elif kind == "variance_change":
        end = min(n, at + 600)
        v[at:end] += rng.normal(0, 5 * noise, end - at)
    elif kind == "flat_line":
        v[at : min(n, at + 240)] = v[at - 1]
    s.onsets.append(float(s.ts[at]))
    s.kinds.append(kind)


def make_corpus(seed: int) -> tuple[list[Series], list[Series]]:
    """(clean series, series with anomalies)."""
    rng = np.random.default_rng(seed)
    setups = [  # shape, cadence (s), points
        ("sine", 60.0, 14_400),
        ("square", 60.0, 14_400),
        ("poisson", 300.0, 4032),
        ("tweets", 300.0, 4032),
        ("latency", 10.0, 25_920),
        ("weekly", 3600.0, 1008),
        ("weekly", 600.0, 6048),
        ("trend", 60.0, 8640),
        ("noise", 60.0, 3000),
        ("noise", 5.0, 300),
    ]
    clean, dirty = [], []
    for shape, cadence, n in setups:
        clean.append(base_series(rng, shape, n, cadence))
        clean.append(irregular(rng, base_series(rng, shape, n, cadence), cadence))
        for kind in KINDS:
            s = base_series(rng, shape, n, cadence)
            positions = sorted(rng.choice(np.arange(int(0.4 * n), n - 60), 2, replace=False))
            if kind == "gap":
                s = with_gaps(s, [int(p) for p in positions], cadence)
            else:
                for p in positions:
                    inject(rng, s, kind, int(p))
            s.name = f"{shape}@{cadence:g}s:{kind}"
            dirty.append(s)
    return clean, dirty


def with_gaps(s: Series, positions: list[int], cadence: float) -> Series:
    """The series with a pause of 60 cadences before each position (points dropped)."""
    keep = np.ones(s.ts.shape[0], dtype=bool)
    gap = 60
    onsets = []
    for p in positions:
        keep[max(p - gap, 0) : p] = False
        onsets.append(float(s.ts[p]))
    out = Series(s.name, s.ts[keep], s.values[keep], onsets, ["gap"] * len(onsets))
    return out


def run_ours(s: Series, batch: int) -> tuple[list[float], float]:
    """Alert times from a metric series at default settings; seconds spent."""
    series = MetricSeries.create(SuiteSettings())
    alerts: list[float] = []
    start = time.perf_counter()
    for i in range(0, s.ts.shape[0], batch):
        found = series.observe("metric:x", s.ts[i : i + batch], s.values[i : i + batch])
        alerts += [f.event_ts for f in found if f.details.get("state") == "alarm"]
    return alerts, time.perf_counter() - start


def run_zscore(
    s: Series, batch: int, history: int = 120, recover: int = 120
) -> tuple[list[float], float]:
    """A rolling z-score at the same budget: alert when a point leaves the
    threshold after ``recover`` quiet points."""
    del batch
    if s.values.shape[0] <= history:
        return [], 0.0
    n_checks = SuiteSettings().false_alarm_events
    z = float(-special.ndtri(0.5 / n_checks))
    v = s.values
    alerts: list[float] = []
    start = time.perf_counter()
    windows = np.lib.stride_tricks.sliding_window_view(v, history)[:-1]
    mean, sd = windows.mean(axis=1), windows.std(axis=1) + 1e-12
    score = np.abs(v[history:] - mean) / sd
    last = -(10**9)
    for i in np.flatnonzero(score > z).tolist():
        if i - last >= recover:
            alerts.append(float(s.ts[history + i]))
        last = i
    return alerts, time.perf_counter() - start


def score(corpus: list[Series], alerts: list[list[float]]) -> dict[str, float]:
    detected = fp = total = 0
    delays: list[float] = []
    for s, found in zip(corpus, alerts, strict=True):
        n = s.ts.shape[0]
        span = float(s.ts[-1] - s.ts[0])
        width = max(0.05 * span, 30 * span / n)
        windows = [(o, o + width) for o in s.onsets]
        hit = [False] * len(windows)
        for t in found:
            inside = [i for i, (a, b) in enumerate(windows) if a <= t <= b]
            if not inside:
                fp += 1
            for i in inside:
                if not hit[i]:
                    hit[i] = True
                    delays.append((t - windows[i][0]) / (span / n))
        detected += sum(hit)
        total += len(windows)
    precision = detected / max(detected + fp, 1)
    recall = detected / max(total, 1)
    f1 = 2 * precision * recall / max(precision + recall, 1e-12)
    median_delay = float(np.median(delays)) if delays else float("nan")
    return {"precision": precision, "recall": recall, "f1": f1, "fp": fp, "delay": median_delay}


def evaluate(
    name: str,
    runner: Callable[[Series, int], tuple[list[float], float]],
    clean: list[Series],
    dirty: list[Series],
    batch: int,
) -> dict[str, float]:
    seconds = points = 0.0
    clean_alerts = []
    for s in clean:
        found, spent = runner(s, batch)
        clean_alerts.append(len(found))
        seconds, points = seconds + spent, points + s.ts.shape[0]
    dirty_alerts = []
    for s in dirty:
        found, spent = runner(s, batch)
        dirty_alerts.append(found)
        seconds, points = seconds + spent, points + s.ts.shape[0]
    out = score(dirty, dirty_alerts)
    out["clean_alerts"] = float(sum(clean_alerts))
    out["clean_max"] = float(max(clean_alerts))
    out["us_per_point"] = 1e6 * seconds / points
    by_kind: dict[str, list[int]] = {}
    for s, found in zip(dirty, dirty_alerts, strict=True):
        got = score([s], [found])
        by_kind.setdefault(s.kinds[0], []).append(round(got["recall"] * len(s.onsets)))
    print(f"{name}:")
    print(
        f"  precision {out['precision']:.3f}  recall {out['recall']:.3f}  F1 {out['f1']:.3f}"
        f"  false positives {out['fp']:.0f}  median delay {out['delay']:.1f} points"
    )
    print(
        f"  clean series: {out['clean_alerts']:.0f} alerts over {len(clean)}"
        f" (at most {out['clean_max']:.0f} on one);  {out['us_per_point']:.1f} µs/point"
    )
    kinds = "  ".join(f"{k} {sum(v)}/{2 * len(v)}" for k, v in by_kind.items())
    print(f"  detected by kind: {kinds}")
    for s, c in zip(clean, clean_alerts, strict=True):
        if c:
            print(f"    clean {s.name}: {c} alerts")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch", type=int, default=200)
    args = parser.parse_args()
    clean, dirty = make_corpus(args.seed)
    points = sum(s.ts.shape[0] for s in clean + dirty)
    print(
        f"corpus (seed {args.seed}): {len(clean)} clean series, {len(dirty)} with "
        f"{sum(len(s.onsets) for s in dirty)} anomalies; {points} points"
    )
    ours = evaluate("metric_anomaly (default settings)", run_ours, clean, dirty, args.batch)
    base = evaluate(
        "rolling z-score (120 points, same budget)", run_zscore, clean, dirty, args.batch
    )
    print(
        f"ratio metric_anomaly / z-score: F1 {ours['f1'] / max(base['f1'], 1e-12):.2f}x, "
        f"precision {ours['precision'] / max(base['precision'], 1e-12):.2f}x, clean-series "
        f"alerts {ours['clean_alerts']:.0f} vs {base['clean_alerts']:.0f}, cost "
        f"{ours['us_per_point'] / max(base['us_per_point'], 1e-12):.0f}x"
    )


if __name__ == "__main__":
    main()
