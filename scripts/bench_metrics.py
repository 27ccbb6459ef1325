"""Benchmark the metric anomaly detector on a labelled generated corpus.

The corpus (:mod:`metric_corpus`, seeded): synthetic series of every kind of
anomaly at cadences from 10 seconds to an hour, and families that resemble
operations data (short change-point series, cloud CPU, tweet volumes, ad
prices, machine temperature). Each series is fed as ``metric`` points to a
metric series of the default suite settings (``MetricSeries``: the default
detector, the suite's false-alarm budget and its alarm states), in batches.

Three scores, each for metric_anomaly, a rolling z-score (mean and standard
deviation of the 120 points before, the same false-alarm budget as a normal
quantile, one alert per excursion like the suite's alarm states) and "no
detection", in one run:

- window F1: a window after each true anomaly (5% of the series, at least 30
  points); the first alert inside it detects the anomaly, every alert outside
  every window is a false positive (precision, recall, F1, median delay);
- the NAB standard-profile score (Lavin & Ahmad 2015), from its published
  definition: windows of 10% of the series' points in all, shared equally by
  its anomalies and centred on them (overlapping ones merged); alerts in the
  first 15% of a series (at most 750 points) not scored; the earliest alert in
  a window earns ``A_TP * sigma(y) / sigma(-1)`` with ``sigma(y) = 2 / (1 +
  exp(5y)) - 1`` and ``y`` its position from -1 (the window's left edge) to 0
  (its right edge); an alert outside every window ``A_FP * sigma(y)`` with
  ``y`` its distance after the last window in that window's widths (``sigma``
  taken as -1 before any window and from three widths on); a window without
  an alert ``-A_FN``; A_TP = 1, A_FP = 0.11,
  A_FN = 1. The corpus' sum is normalised to 0 (the null detector, which
  alerts nowhere) .. 100 (an alert at each window's left edge);
- change-point F1 and covering as the Turing change-point benchmark (van den
  Burg & Williams 2020) defines them, on the series whose anomalies are
  changes (level shifts, trend changes, variance changes and flat-lines, whose
  ends are changes too) and the clean ones: the start of a series counts as
  a change in both the truth and the alerts; an alert's change is where it
  says the change started (``details.onset_points_back`` points before the
  point it was raised at, where given: change-point benchmarks score the
  reported location; NAB and the window F1 the alert's time); one within
  ``--margin`` points of a true change (each used once) is a true positive; F1 of
  precision and recall; covering the mean over true segments, weighted by
  length, of the best Jaccard overlap with a segment between alerts; both
  averaged over series.

    .venv/bin/python scripts/bench_metrics.py [--seed 1] [--batch 200] [--margin 5]
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import special

from detectors.metric.series import MetricSeries
from detectors.suite.settings import SuiteSettings

sys.path.insert(0, str(Path(__file__).resolve().parent))
from metric_corpus import Series, make_corpus

__all__ = ["make_corpus"]


Run = tuple[list[float], list[float], float]  # alert times, change times, CPU seconds


def run_ours(s: Series, batch: int) -> Run:
    """Alert times from a metric series at default settings; the times of the
    changes they report (``details.onset_points_back`` points before the
    alert's point, where given: the estimated start of a level shift, trend
    change or flat-line); CPU seconds spent."""
    series = MetricSeries.create(SuiteSettings())
    alerts: list[float] = []
    onsets: list[float] = []
    start = time.process_time()
    for i in range(0, s.ts.shape[0], batch):
        found = series.observe("metric:x", s.ts[i : i + batch], s.values[i : i + batch])
        for f in found:
            if f.details.get("state") == "alarm":
                alerts.append(f.event_ts)
                back = int(f.details.get("onset_points_back", 0))
                onsets.append(float(s.ts[max(int(f.details["point_index"]) - back, 0)]))
    return alerts, onsets, time.process_time() - start


def run_zscore(s: Series, batch: int, history: int = 120, recover: int = 120) -> Run:
    """A rolling z-score at the same budget: alert when a point leaves the
    threshold after ``recover`` quiet points."""
    del batch
    if s.values.shape[0] <= history:
        return [], [], 0.0
    n_checks = SuiteSettings().false_alarm_events
    z = float(-special.ndtri(0.5 / n_checks))
    v = s.values
    alerts: list[float] = []
    start = time.process_time()
    windows = np.lib.stride_tricks.sliding_window_view(v, history)[:-1]
    mean, sd = windows.mean(axis=1), windows.std(axis=1) + 1e-12
    score = np.abs(v[history:] - mean) / sd
    last = -(10**9)
    for i in np.flatnonzero(score > z).tolist():
        if i - last >= recover:
            alerts.append(float(s.ts[history + i]))
        last = i
    return alerts, alerts, time.process_time() - start


def window_hits(s: Series, found: list[float]) -> tuple[list[bool], int, list[float]]:
    """Which anomalies of ``s`` an alert detected (the first inside a window
    after it, 5% of the series and at least 30 points), how many alerts fell
    outside every window, and the detection delays in points."""
    n = s.ts.shape[0]
    span = float(s.ts[-1] - s.ts[0])
    width = max(0.05 * span, 30 * span / n)
    windows = [(o, o + width) for o in s.onsets]
    hit = [False] * len(windows)
    fp = 0
    delays: list[float] = []
    for t in found:
        inside = [i for i, (a, b) in enumerate(windows) if a <= t <= b]
        if not inside:
            fp += 1
        for i in inside:
            if not hit[i]:
                hit[i] = True
                delays.append((t - windows[i][0]) / (span / n))
    return hit, fp, delays


def score(corpus: list[Series], alerts: list[list[float]]) -> dict[str, float]:
    detected = fp = total = 0
    delays: list[float] = []
    for s, found in zip(corpus, alerts, strict=True):
        hit, outside, late = window_hits(s, found)
        detected, fp, total = detected + sum(hit), fp + outside, total + len(hit)
        delays += late
    precision = detected / max(detected + fp, 1)
    recall = detected / max(total, 1)
    f1 = 2 * precision * recall / max(precision + recall, 1e-12)
    median_delay = float(np.median(delays)) if delays else float("nan")
    return {"precision": precision, "recall": recall, "f1": f1, "fp": fp, "delay": median_delay}


A_TP, A_FP, A_FN = 1.0, 0.11, 1.0  # NAB's standard profile
CHANGE_KINDS = ("level_shift", "trend_change", "variance_change", "flat_line")


def _nab_sigma(y: float) -> float:
    """NAB's scaled sigmoid: 0.987 at a window's left edge (-1), 0 at its right
    edge (0), -1 from three widths past it."""
    return -1.0 if y >= 3.0 else 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


def nab_windows(n: int, onsets: list[int]) -> list[tuple[int, int]]:
    """Windows of 10% of ``n`` points in all, centred on the anomalies, merged
    where they overlap."""
    if not onsets:
        return []
    half = int(0.1 * n / len(onsets)) // 2
    out: list[tuple[int, int]] = []
    for at in sorted(onsets):
        left, right = max(at - half, 0), min(at + half, n - 1)
        if out and left <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], right))
        else:
            out.append((left, right))
    return out


def nab_raw(n: int, onsets: list[int], alerts: list[int]) -> float:
    """The NAB standard-profile sum of one series (alerts as point indices)."""
    probation = min(math.floor(0.15 * n), 0.15 * 5000)
    windows = [w for w in nab_windows(n, onsets) if w[1] >= probation]
    best: list[float | None] = [None] * len(windows)
    total = 0.0
    for at in sorted(set(alerts)):
        if at < probation:
            continue
        inside = [i for i, (a, b) in enumerate(windows) if a <= at <= b]
        if inside:
            i = inside[0]
            left, right = windows[i]
            width = right - left + 1
            if best[i] is None:  # the earliest alert in a window is its best
                best[i] = A_TP * _nab_sigma(-(right - at + 1) / width) / _nab_sigma(-1.0)
            continue
        before = [w for w in windows if w[1] < at]
        if before:
            left, right = before[-1]
            total += A_FP * _nab_sigma(abs(right - at) / max(right - left, 1))
        else:
            total += A_FP * _nab_sigma(3.0)
    return total + sum(-A_FN if b is None else b for b in best)


def nab_score(corpus: list[Series], alerts: list[list[int]]) -> float:
    """The corpus' NAB standard-profile score: 0 the null detector, 100 a perfect one."""
    raw = null = perfect = 0.0
    for s, found in zip(corpus, alerts, strict=True):
        n = s.ts.shape[0]
        onsets = [int(np.searchsorted(s.ts, t)) for t in s.onsets]
        windows = len([w for w in nab_windows(n, onsets) if w[1] >= min(0.15 * n, 750)])
        raw += nab_raw(n, onsets, found)
        null -= A_FN * windows
        perfect += A_TP * windows
    return 100.0 * (raw - null) / max(perfect - null, 1e-12)


def _true_positives(truth: set[int], found: set[int], margin: int) -> int:
    """Changes matched by an alert within ``margin`` points, each alert used once."""
    left = set(found)
    hits = 0
    for tau in sorted(truth):
        close = sorted((abs(tau - x), x) for x in left if abs(tau - x) <= margin)
        if close:
            hits += 1
            left.remove(close[0][1])
    return hits


def change_f1(truth: list[int], found: list[int], margin: int) -> float:
    """F1 of change points with the series' start counted in both (one annotator)."""
    t, x = {0, *truth}, {0, *found}
    tp = _true_positives(t, x, margin)
    precision, recall = tp / len(x), tp / len(t)
    return 2 * precision * recall / max(precision + recall, 1e-12)


def covering(truth: list[int], found: list[int], n: int) -> float:
    """How well the segments between alerts cover the true segments: the
    length-weighted mean of each true segment's best Jaccard overlap."""

    def segments(points: list[int]) -> list[tuple[int, int]]:
        cuts = sorted({0, n, *(p for p in points if 0 < p < n)})
        return list(itertools.pairwise(cuts))

    guess = segments(found)
    total = 0.0
    for a, b in segments(truth):
        overlap = 0.0
        for c, d in guess:
            inter = min(b, d) - max(a, c)
            if inter > 0:
                overlap = max(overlap, inter / (max(b, d) - min(a, c)))
        total += (b - a) * overlap
    return total / n


def change_scores(
    corpus: list[Series], alerts: list[list[int]], margin: int
) -> tuple[float, float, int]:
    """Mean change-point F1 and covering over the clean series and those whose
    anomalies are changes; how many series."""
    f1s, covers = [], []
    for s, found in zip(corpus, alerts, strict=True):
        if s.kinds and s.kinds[0] not in CHANGE_KINDS:
            continue
        truth = [int(np.searchsorted(s.ts, t)) for t in s.onsets + s.ends]
        f1s.append(change_f1(truth, found, margin))
        covers.append(covering(truth, found, s.ts.shape[0]))
    if not f1s:
        return math.nan, math.nan, 0
    return float(np.mean(f1s)), float(np.mean(covers)), len(f1s)


def to_indices(s: Series, times: list[float]) -> list[int]:
    """Alert times as point indices (an alert is dated by a point's time)."""
    return [int(np.searchsorted(s.ts, t)) for t in times]


def run_none(s: Series, batch: int) -> Run:
    """No detection at all: the reference that NAB and the change-point scores start from."""
    del s, batch
    return [], [], 0.0


def evaluate(
    name: str,
    runner: Callable[[Series, int], Run],
    clean: list[Series],
    dirty: list[Series],
    args: argparse.Namespace,
) -> dict[str, float]:
    seconds = points = 0.0
    found_all: list[list[float]] = []
    onsets_all: list[list[float]] = []
    for s in clean + dirty:
        found, onsets, spent = runner(s, args.batch)
        found_all.append(found)
        onsets_all.append(onsets)
        seconds, points = seconds + spent, points + s.ts.shape[0]
    print(f"{name}:")
    out = summary(clean, dirty, found_all, onsets_all, args.margin)
    out["us_per_point"] = 1e6 * seconds / points
    print(f"  {out['us_per_point']:.1f} µs/point (CPU time)")
    by_kind: dict[str, list[bool]] = {}
    for s, found in zip(dirty, found_all[len(clean) :], strict=True):
        for kind, hit in zip(s.kinds, window_hits(s, found)[0], strict=True):
            by_kind.setdefault(kind, []).append(hit)
    kinds = "  ".join(f"{k} {sum(v)}/{len(v)}" for k, v in by_kind.items())
    print(f"  detected by kind: {kinds}")
    for family in dict.fromkeys(s.family for s in clean + dirty):
        chosen = [i for i, s in enumerate(clean + dirty) if s.family == family]
        print(f"  family {family}:", end="")
        out[f"nab:{family}"] = summary(
            [s for s in clean if s.family == family],
            [s for s in dirty if s.family == family],
            [found_all[i] for i in chosen],
            [onsets_all[i] for i in chosen],
            args.margin,
            indent="    ",
        )["nab"]
    for s, found in zip(clean, found_all[: len(clean)], strict=True):
        if found:
            print(f"    clean {s.name}: {len(found)} alerts")
    return out


def summary(
    clean: list[Series],
    dirty: list[Series],
    found_all: list[list[float]],
    onsets_all: list[list[float]],
    margin: int,
    indent: str = "  ",
) -> dict[str, float]:
    """Print and return the scores of alerts ``found_all`` on ``clean + dirty``
    (the change-point scores of the changes they report, ``onsets_all``)."""
    clean_alerts = [len(f) for f in found_all[: len(clean)]]
    out = score(dirty, found_all[len(clean) :])
    out["clean_alerts"] = float(sum(clean_alerts))
    out["clean_max"] = float(max(clean_alerts, default=0))
    indices = [to_indices(s, f) for s, f in zip(clean + dirty, found_all, strict=True)]
    out["nab"] = nab_score(clean + dirty, indices)
    changes = [to_indices(s, f) for s, f in zip(clean + dirty, onsets_all, strict=True)]
    out["cp_f1"], out["cover"], cp_series = change_scores(clean + dirty, changes, margin)
    print(
        f"{' ' if indent != '  ' else indent}precision {out['precision']:.3f}  recall "
        f"{out['recall']:.3f}  F1 {out['f1']:.3f}  false positives {out['fp']:.0f}  median "
        f"delay {out['delay']:.1f} points"
    )
    print(
        f"{indent}NAB standard profile {out['nab']:.1f};  change points ({cp_series} series, "
        f"margin {margin}): F1 {out['cp_f1']:.3f}  covering {out['cover']:.3f}"
    )
    print(
        f"{indent}clean series: {out['clean_alerts']:.0f} alerts over {len(clean)}"
        f" (at most {out['clean_max']:.0f} on one)"
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--margin", type=int, default=5, help="change-point margin, in points")
    args = parser.parse_args()
    clean, dirty = make_corpus(args.seed)
    points = sum(s.ts.shape[0] for s in clean + dirty)
    print(
        f"corpus (seed {args.seed}): {len(clean)} clean series, {len(dirty)} with "
        f"{sum(len(s.onsets) for s in dirty)} anomalies; {points} points"
    )
    ours = evaluate("metric_anomaly (default settings)", run_ours, clean, dirty, args)
    base = evaluate("rolling z-score (120 points, same budget)", run_zscore, clean, dirty, args)
    none = evaluate("no detection", run_none, clean, dirty, args)
    print(
        f"ratio metric_anomaly / z-score: F1 {ours['f1'] / max(base['f1'], 1e-12):.2f}x, "
        f"precision {ours['precision'] / max(base['precision'], 1e-12):.2f}x, clean-series "
        f"alerts {ours['clean_alerts']:.0f} vs {base['clean_alerts']:.0f}, cost "
        f"{ours['us_per_point'] / max(base['us_per_point'], 1e-12):.0f}x"
    )
    print(
        f"NAB standard profile: metric_anomaly {ours['nab']:.1f}, z-score {base['nab']:.1f}, "
        f"no detection {none['nab']:.1f};  change-point F1 {ours['cp_f1']:.3f} / "
        f"{base['cp_f1']:.3f} / {none['cp_f1']:.3f}, covering {ours['cover']:.3f} / "
        f"{base['cover']:.3f} / {none['cover']:.3f}"
    )


if __name__ == "__main__":
    main()
