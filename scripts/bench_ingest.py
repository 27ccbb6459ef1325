"""CPU per event of the ingest path without the drift detectors, old code against new.

    .venv/bin/python scripts/bench_ingest.py [--events 40960] [--repeats 5] [--rounds 3]
        [--code LABEL=DIR ...]

Two measurements, each in CPU seconds (``time.process_time``: a machine shared
with other jobs moves it far less than wall time), the fastest of ``--repeats``:

1. ingest: parse each record of ``bench_daemon.make_events`` (20 features, a
   client, a request id, a score, a prediction), buffer it in a model's
   pipeline (no label join) and turn every 2,048 into columns;
2. CBPE: hand a model's scored predictions to the estimator in batches of
   2,048, past its reference (no window closes: the per-event part), alone and
   with a label for every other prediction interleaved; then past the fit of its
   calibration with a window closing every 2,000 predictions (no labels).

With ``--code``, each source tree runs in its own process (``PYTHONPATH``),
one after the other in every round, so old and new code compare within one run;
trees from before the column path are driven through their own API (``Event``,
``Scored``).
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FLUSH = 2048


def best(repeats: int, run: Callable[[], float]) -> float:
    return min(run() for _ in range(repeats))


def ingest_us(lines: list[bytes], repeats: int) -> float:
    """CPU microseconds per event: parse, buffer, columns."""
    from detectors.suite.model_detectors import ModelDetectors
    from monitor.ingest import batching, events
    from monitor.pipeline.pipeline import ModelPipeline

    rows = hasattr(events, "parse_record")

    def run() -> float:
        model = ModelPipeline("m0", ModelDetectors())
        started = time.process_time()
        for start in range(0, len(lines), FLUSH):
            for line in lines[start : start + FLUSH]:
                if rows:
                    model.add_row(events.parse_record(line, None, events.ANY_TIME))  # type: ignore[arg-type]
                else:
                    model.add(events.parse_event(line, None, events.ANY_TIME))  # type: ignore[arg-type]
            build: Any = batching.rows_batch if rows else batching.row_batch
            build(model.rows, model.row_seq, model.categorical)
            model.rows, model.row_seq, model.scored, model.times = [], [], [], []
            model.buffered = 0
        return (time.process_time() - started) / len(lines) * 1e6

    return best(repeats, run)


def cbpe_us(n: int, repeats: int, labels: bool) -> float:
    """CPU microseconds per scored prediction fed to CBPE past its reference."""
    import numpy as np

    from detectors.performance import estimated

    rng = np.random.default_rng(0)
    p = rng.beta(0.6, 0.6, n)
    predicted = np.where(p >= 0.5, "yes", "no").tolist()
    confidence = np.where(p >= 0.5, p, 1 - p).tolist()
    truth = np.where(rng.random(n) < p, "yes", "no").tolist()
    stream: list[tuple[Any, ...]] = []
    for i in range(n):
        stream.append((len(stream), 1.79e9 + i, f"r{i}", predicted[i], confidence[i], None, None))
        if labels and i % 2 == 0 and i >= 50:
            answer = truth[i - 50]
            stream.append((len(stream), 1.79e9 + i, f"r{i - 50}", None, math.nan, None, answer))
    rows = hasattr(estimated.EstimatedPerformance, "observe_rows")

    def run() -> float:
        est = estimated.EstimatedPerformance(reference=10**9)  # no window closes
        started = time.process_time()
        for start in range(0, len(stream), FLUSH):
            chunk = stream[start : start + FLUSH]
            if rows:
                est.observe_rows(chunk)
            else:
                est.observe([estimated.Scored(*row) for row in chunk])
        return (time.process_time() - started) / n * 1e6

    return best(repeats, run)


def cbpe_closes_us(n: int, repeats: int) -> float:
    """CPU microseconds per scored prediction past the calibration's fit, window closes
    included (a window of 2,000 closes every 2,000 predictions; labels never come)."""
    import numpy as np

    from detectors.performance import estimated

    rng = np.random.default_rng(1)
    p = rng.beta(0.6, 0.6, n + 12_000)
    predicted = np.where(p >= 0.5, "yes", "no").tolist()
    confidence = np.where(p >= 0.5, p, 1 - p).tolist()
    stream = [
        (i, 1.79e9 + i, f"r{i}", predicted[i], confidence[i], None, None)
        for i in range(len(predicted))
    ]
    warm, timed = stream[:12_000], stream[12_000:]  # the reference and its first window

    def feed(est: Any, rows: list[tuple[Any, ...]]) -> None:
        for start in range(0, len(rows), FLUSH):
            est.observe_rows(rows[start : start + FLUSH])

    def run() -> float:
        est = estimated.EstimatedPerformance(window=2000, reference=10_000)
        feed(est, warm)
        started = time.process_time()
        feed(est, timed)
        return (time.process_time() - started) / n * 1e6

    return best(repeats, run)


def measure(events: int, repeats: int) -> str:
    # The packages first, from PYTHONPATH (the tree measured): bench_daemon puts this
    # script's own tree in front of sys.path when it is imported.
    import detectors
    import monitor

    sys.path.insert(0, str(ROOT / "scripts"))
    from bench_daemon import make_events

    assert Path(monitor.__file__).parents[1] == Path(detectors.__file__).parents[1]

    gc.set_threshold(50_000, 20, 100)  # as the daemon and the replays do
    lines = make_events(events, 1)
    return (
        f"ingest (parse, buffer, columns) {ingest_us(lines, repeats):.2f} us/event; "
        f"CBPE {cbpe_us(events, repeats, labels=False):.2f} us/prediction alone, "
        f"{cbpe_us(events, repeats, labels=True):.2f} with labels interleaved, "
        f"{cbpe_closes_us(events, repeats):.2f} with window closes"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=40_960)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--code", nargs="+", metavar="LABEL=DIR", default=[])
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure or not args.code:
        print(measure(args.events, args.repeats), flush=True)
        return
    trees = [item.partition("=")[::2] for item in args.code]
    for label, where in trees:
        if not label or not (Path(where) / "monitor" / "ingest").is_dir():
            parser.error(f"--code {label}={where}: give LABEL=DIR, DIR a Driftwarden source tree")
    for round_ in range(1, args.rounds + 1):
        for label, where in trees:
            tree = str(Path(where).resolve())
            command = [sys.executable, __file__, "--measure", "--events", str(args.events)]
            command += ["--repeats", str(args.repeats)]
            line = subprocess.run(
                command,
                env={**os.environ, "PYTHONPATH": tree},
                cwd=tree,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            print(f"round {round_}, {label}: {line}", flush=True)


if __name__ == "__main__":
    main()
