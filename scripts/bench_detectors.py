"""Benchmark the detector suite: microseconds per event and state size.

A model with 20 features (16 numeric of varied shapes, 4 categorical), a score
and a predicted class, fed in batches of --batch events, after the warm-up
that forms the reference (with --callers, each event also carries a caller id).
Also times each registered detector alone.

    .venv/bin/python scripts/bench_detectors.py [--events 200000] [--batch 500] [--callers 0]
"""

from __future__ import annotations

import argparse
import json
import time
import tracemalloc

import numpy as np

from detectors import registry
from detectors.base import RowBatch
from detectors.suite.model_detectors import ModelDetectors
from detectors.suite.settings import SuiteSettings

LABELS = {
    "colour": np.array(["red", "green", "blue", "black", "white"], dtype=object),
    "city": np.array([f"city{i}" for i in range(50)], dtype=object),
    "flag": np.array(["true", "false"], dtype=object),
    "device": np.array([f"dev{i}" for i in range(5000)], dtype=object),
}
CLASSES = np.array(["cat", "dog", "bird"], dtype=object)


def make_batch(rng: np.random.Generator, n: int, first: int, callers: int = 0) -> RowBatch:
    shapes = [
        lambda: rng.normal(0, 1, n),
        lambda: rng.standard_t(3, n),
        lambda: rng.lognormal(0, 1, n),
        lambda: rng.poisson(3, n).astype(np.float64),
        lambda: np.where(rng.random(n) < 0.7, 0.0, rng.gamma(2, 1, n)),
        lambda: rng.random(n),
        lambda: np.round(rng.normal(50, 2, n)),
        lambda: (rng.random(n) < 0.3).astype(np.float64),
    ]
    numeric = {f"num{i}": shapes[i % len(shapes)]() for i in range(16)}
    numeric["num0"][rng.random(n) < 0.05] = np.nan
    categorical = {}
    for name, labels in LABELS.items():
        weights = 1.0 / np.arange(1, labels.size + 1) ** 1.1
        categorical[name] = labels[rng.choice(labels.size, n, p=weights / weights.sum())]
    score = 1 / (1 + np.exp(-(numeric["num8"] + rng.normal(0, 1, n))))
    prediction = CLASSES[np.digitize(score, [0.4, 0.7])]
    ts = 1.7e9 + np.arange(first, first + n) * 0.01
    client = None
    if callers:  # drawn last: the other columns are the same with or without callers
        weights = 1.0 / np.arange(1, callers + 1) ** 0.8
        names = np.array([f"api-key-{i}" for i in range(callers)], dtype=object)
        client = names[rng.choice(callers, n, p=weights / weights.sum())]
    return RowBatch(ts, numeric, categorical, score=score, prediction=prediction, client=client)


def batches(events: int, batch: int, seed: int, callers: int = 0) -> list[RowBatch]:
    rng = np.random.default_rng(seed)
    return [make_batch(rng, min(batch, events - s), s, callers) for s in range(0, events, batch)]


def run(
    settings: SuiteSettings, data: list[RowBatch], warm: int
) -> tuple[float, float, int, float]:
    """(µs/event after warm-up, µs/event overall, events after warm-up, CPU µs/event
    after warm-up). The CPU time is this process's only: on a shared machine it
    varies less than the wall time, which counts the time other jobs ran."""
    md = ModelDetectors(settings)
    start = time.perf_counter()
    seen, steady_start, steady_events, steady_cpu = 0, 0.0, 0, 0.0
    for b in data:
        if seen >= warm and steady_start == 0.0:
            steady_start, steady_cpu = time.perf_counter(), time.process_time()
        md.observe_rows(b)
        seen += len(b)
        if steady_start:
            steady_events += len(b)
    end, cpu = time.perf_counter(), time.process_time()
    return (
        (end - steady_start) / steady_events * 1e6,
        (end - start) / seen * 1e6,
        steady_events,
        (cpu - steady_cpu) / steady_events * 1e6,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument(
        "--callers",
        type=int,
        default=0,
        help="events carry a caller id, drawn from this many callers (0: none); "
        "the per-client detectors only work on events that have one",
    )
    args = parser.parse_args()
    settings = SuiteSettings()
    data = batches(args.events, args.batch, seed=1, callers=args.callers)
    warm = settings.reference_size
    steady, overall, n, cpu = run(settings, data, warm)
    print(f"default set {settings.row_detectors}")
    print(
        f"  {steady:.2f} µs/event after warm-up ({n} events, batches of {args.batch}); "
        f"{overall:.2f} µs/event including the {warm}-event warm-up"
    )
    print(f"  {cpu:.2f} µs/event of CPU after warm-up")

    md = ModelDetectors(settings)
    tracemalloc.start()
    for b in data[: len(data) // 2]:
        md.observe_rows(b)
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    size = len(json.dumps(md.dump()))
    print(f"  memory: {current / 1e6:.2f} MB held, {peak / 1e6:.2f} MB peak (tracemalloc)")
    print(f"  state: dump {size / 1e6:.2f} MB as JSON")

    print("each detector alone (µs/event after warm-up: wall, CPU):")
    for name in registry.names():
        kind = registry.get(name).kind
        if kind == "metric":
            continue
        alone = SuiteSettings(detectors=(name,))
        us, _, _, cpu = run(alone, data[: max(len(data) // 2, 1)], warm)
        print(f"  {name:18s} {kind:13s} {us:6.2f} {cpu:6.2f}")
    rng = np.random.default_rng(2)
    values = 100 * rng.lognormal(0, 0.3, 100_000)
    md = ModelDetectors(settings)
    start = time.perf_counter()
    for s in range(0, values.size, 600):
        chunk = values[s : s + 600]
        md.observe_metric("latency_ms", s + np.arange(chunk.size, dtype=np.float64), chunk)
    us = (time.perf_counter() - start) / values.size * 1e6
    print(f"  {'metric_anomaly':18s} {'metric':13s} {us:6.2f} (per metric point, batches of 600)")


if __name__ == "__main__":
    main()
