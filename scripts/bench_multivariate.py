"""Benchmark pca_drift over all features against pca_drift over the numeric ones.

The 20-feature model of bench_detectors.py (16 numeric, 4 categorical, one with
5000 labels): a 10,000-event reference, then windows of 2,000 events. Times,
in one run and alternating (the fastest of five passes), the fit and the test of one window with the
categorical features (as the suite runs it now) and without them (as before),
and prints the ratios. With --wide, also the fit of the widest model the caps
allow (500 features, ``max_features``), all categorical against all numeric.

    .venv/bin/python scripts/bench_multivariate.py [--windows 40] [--wide]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_detectors import make_batch

from detectors.multivariate import PCADrift
from detectors.reference import CategoricalReference
from detectors.window.base import CategoricalWindow, NumericWindow

REFERENCE, WINDOW = 10_000, 2_000
PASSES = 5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=40)
    parser.add_argument("--wide", action="store_true")
    args = parser.parse_args()
    if args.wide:
        wide()
    rng = np.random.default_rng(1)
    ref = make_batch(rng, REFERENCE, 0)
    refs = {k: CategoricalReference.build(v, 1000) for k, v in ref.categorical.items()}
    coded = {k: CategoricalWindow(refs[k].encode(v), refs[k]) for k, v in ref.categorical.items()}
    fit_s = {"all features": math.inf, "numeric only": math.inf}
    dets = {name: PCADrift() for name in fit_s}
    for _ in range(PASSES):  # the fastest of five fits
        for name, det in dets.items():
            start = time.perf_counter()
            det.fit(ref.numeric, 0, coded if name == "all features" else None)
            fit_s[name] = min(fit_s[name], time.perf_counter() - start)
    windows = []
    for i in range(args.windows):
        b = make_batch(rng, WINDOW, REFERENCE + i * WINDOW)
        num = {k: NumericWindow(v) for k, v in b.numeric.items()}
        cat = {k: CategoricalWindow(refs[k].encode(v), refs[k]) for k, v in b.categorical.items()}
        windows.append((num, cat))
    # Five passes over the windows, alternating the two tests window by
    # window; the fastest pass of each counts (the machine is shared).
    passes: dict[str, list[float]] = {name: [] for name in dets}
    for _ in range(PASSES):
        spent = dict.fromkeys(dets, 0.0)
        for num, cat in windows:
            for name, det in dets.items():
                start = time.perf_counter()
                det.test_window(num, cat)
                spent[name] += time.perf_counter() - start
        for name in dets:
            passes[name].append(spent[name])
    test_s = {name: min(times) for name, times in passes.items()}
    for name, det in dets.items():
        us = test_s[name] / (args.windows * WINDOW) * 1e6
        print(
            f"{name:13s} fit {fit_s[name] * 1e3:7.1f} ms, test {us:5.3f} µs/event, "
            f"{det.dump()['components']['shape'][1]} components"
        )
    print(
        f"ratio all/numeric: fit {fit_s['all features'] / fit_s['numeric only']:.2f}, "
        f"test {test_s['all features'] / test_s['numeric only']:.2f}"
    )


def wide() -> None:
    """Fit seconds and peak memory of a 500-feature model's test."""
    rng = np.random.default_rng(3)
    labels = np.array([f"label{i}" for i in range(20)], dtype=object)
    numeric = {f"num{i}": rng.normal(size=REFERENCE) for i in range(500)}
    coded = {}
    for i in range(500):
        values = rng.choice(labels, REFERENCE)
        ref = CategoricalReference.build(values, 1000)
        coded[f"cat{i}"] = CategoricalWindow(ref.encode(values), ref)
    seconds = {}
    for name, num, cat in (("500 numeric", numeric, None), ("500 categorical", {}, coded)):
        tracemalloc.start()
        start = time.perf_counter()
        PCADrift().fit(num, 0, cat)
        seconds[name] = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(f"{name:15s} fit {seconds[name]:6.1f} s, peak {peak / 1e6:5.0f} MB (tracemalloc)")
    print(
        f"ratio categorical/numeric fit: {seconds['500 categorical'] / seconds['500 numeric']:.1f}"
    )


if __name__ == "__main__":
    main()
