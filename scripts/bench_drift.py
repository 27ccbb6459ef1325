"""Drift benchmark: false alarms, detection delays and cost of the default detector set.

Streams of a 20-feature model (scripts/drift_streams.py) go through
``ModelDetectors`` at default settings, in batches:

1. false alarms: ``--stationary-seeds`` stationary streams of
   ``--stationary-events`` events, findings counted by detector;
2. delays: one feature shifted at an onset not aligned to any block or window;
   the delay is the first finding on that feature's signal after the onset
   (any detector), with the sequential evidence's own and the other
   detectors' first finding beside it, over ``--seeds`` seeds;
3. cost: ``observe_rows`` per event after the warm-up, for the default set and
   for the default set without ``evidence``, alternating on the same batches
   in one run (a ratio, robust to the machine's load).

Run: .venv/bin/python scripts/bench_drift.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from drift_streams import Shift, stream

from detectors.base import Finding
from detectors.registry import DEFAULT_DETECTORS
from detectors.suite.model_detectors import ModelDetectors
from detectors.suite.settings import SuiteSettings

ONSET = 30_137
SCENARIOS: dict[str, tuple[Shift, str, int]] = {
    # name: (shift, signal, events after onset allowed by the target)
    "mean +0.5 sd": (Shift(ONSET, mean_shift=0.5), "feature:normal_0", 1000),
    "scale x1.5": (Shift(ONSET, scale=1.5), "feature:normal_1", 1000),
    "colour mix": (
        Shift(ONSET, colour_p=(0.3, 0.3, 0.15, 0.15, 0.1)),
        "feature:colour",
        1000,
    ),
    "mean +0.1 sd": (Shift(ONSET, mean_shift=0.1), "feature:normal_0", 20_000),
    "share 0.52->0.49": (Shift(ONSET, segment_a=0.49), "feature:segment", 20_000),
}


def run(events: int, batch: int, seed: int, shift: Shift | None = None) -> list[Finding]:
    md = ModelDetectors(SuiteSettings())
    out: list[Finding] = []
    for part in stream(events, batch, seed, shift):
        out += md.observe_rows(part)
    return out


def false_alarms(events: int, seeds: int, batch: int) -> None:
    print(f"false alarms on stationary streams (default settings, batches of {batch})")
    for seed in range(seeds):
        n = events
        started = time.perf_counter()
        found = run(n, batch, 1000 + seed)
        by = Counter(f"{f.detector}|{f.signal}" for f in found)
        took = time.perf_counter() - started
        print(
            f"  seed {1000 + seed}: {n:>9,} events, {len(found)} findings {dict(by)} ({took:.0f} s)"
        )


def first(
    found: list[Finding], signal: str, detector: str | None, other: bool = False
) -> int | None:
    for f in found:
        if f.signal != signal or f.details["event_index"] < ONSET:
            continue
        if detector is None or (f.detector == detector) != other:
            return int(f.details["event_index"]) - ONSET
    return None


def delays(seeds: int, batch: int) -> None:
    print(f"\ndetection delay, events after onset {ONSET} ({seeds} seeds; median, max)")
    for name, (shift, signal, target) in SCENARIOS.items():
        rows: dict[str, list[int | None]] = {"any": [], "evidence": [], "others": []}
        early: Counter[str] = Counter()
        for seed in range(seeds):
            found = run(ONSET + target + 5000, batch, 2000 + seed, shift)
            early.update(
                f"{f.detector}|{f.signal} (seed {2000 + seed})"
                for f in found
                if f.details["event_index"] < ONSET
            )
            rows["any"].append(first(found, signal, None))
            rows["evidence"].append(first(found, signal, "evidence"))
            rows["others"].append(first(found, signal, "evidence", other=True))
        cells = []
        for key, values in rows.items():
            hit = [v for v in values if v is not None]
            missed = len(values) - len(hit)
            text = f"{statistics.median(hit):>7.0f} {max(hit):>7.0f}" if hit else "      -       -"
            cells.append(f"{key} {text}" + (f" ({missed} missed)" if missed else ""))
        within = sum(1 for v in rows["any"] if v is not None and v <= target)
        print(f"  {name:<17} target <= {target:>6}: {'  '.join(cells)}  within: {within}/{seeds}")
        if early:
            print(f"    findings before the onset: {dict(early)}")


def cost(events: int, batch: int) -> None:
    without = tuple(n for n in DEFAULT_DETECTORS if n != "evidence")
    suites = {
        "default set": ModelDetectors(SuiteSettings()),
        "default set without evidence": ModelDetectors(SuiteSettings(detectors=without)),
    }
    spent = dict.fromkeys(suites, 0.0)
    counted = 0
    for part in stream(events, batch, 7):
        warm = all(md.has_reference for md in suites.values())
        for name, md in suites.items():
            started = time.perf_counter()
            md.observe_rows(part)
            spent[name] += time.perf_counter() - started
        if not warm:
            spent = dict.fromkeys(suites, 0.0)
        else:
            counted += len(part)
    print(
        f"\ncost of observe_rows, 20 features, batches of {batch}, {counted:,} events after warm-up"
    )
    base = spent["default set without evidence"]
    for name, seconds in spent.items():
        print(f"  {name:<30} {seconds / counted * 1e6:5.2f} µs/event  ({seconds / base:.2f} x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stationary-events", type=int, default=1_000_000)
    parser.add_argument("--stationary-seeds", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--cost-events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    cost(args.cost_events, args.batch)
    delays(args.seeds, args.batch)
    false_alarms(args.stationary_events, args.stationary_seeds, args.batch)


if __name__ == "__main__":
    main()
