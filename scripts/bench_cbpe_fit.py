"""CBPE's one-time calibration fit per model: the code of two trees side by side.

When a model's first performance window closes, ``EstimatedPerformance._fit`` picks
the score's meaning, calibrates it on the reference's labels and draws the bootstrap
windows that fix the alarm limits and bands. This times that fit (CPU time, the
fastest of ``--repeats``) on references of 10,000 predictions, with each tree's code
loaded in this one process, alternating, and checks both fit the same calibration
(every figure equal):

    git worktree add --detach /tmp/cbpe-before main
    .venv/bin/python scripts/bench_cbpe_fit.py --code before=/tmp/cbpe-before after=.

The models: ``daemon``, scores uniform on [0, 1] to 4 decimals and no labels (as
``bench_daemon.py`` sends); ``binary``, a fraud score (Beta, 3 decimals) with every
label; ``multiclass``, probabilities of 4 classes (Dirichlet) with every label.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import statistics
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

Row = tuple[int, float, str | None, str | None, float, dict[str, float] | None, str | None]
MODELS = ("daemon", "binary", "multiclass")


def stream(model: str, reference: int, window: int, seed: int = 1) -> list[Row]:
    """The reference's predictions (each followed by its label but for ``daemon``) and
    a window of predictions but its last: the stream up to the fit."""
    rng = np.random.default_rng(seed)
    names = ["a", "b", "c", "d"]
    rows: list[Row] = []
    for i in range(reference + window - 1):
        ts, request = 1.6e9 + i, f"r{i}"
        truth = None
        if model == "multiclass":
            p = rng.dirichlet([1.0, 2.0, 3.0, 1.0])
            probs = {c: float(v) for c, v in zip(names, p, strict=True)}
            rows.append((2 * i, ts, request, names[int(np.argmax(p))], float("nan"), probs, None))
            truth = names[int(rng.choice(4, p=p))]
        else:
            if model == "daemon":
                score = round(float(rng.random()), 4)
            else:
                score = round(float(rng.beta(2.0, 5.0)), 3)
                truth = "yes" if rng.random() < score else "no"
            rows.append((2 * i, ts, request, "yes" if score > 0.5 else "no", score, None, None))
        if truth is not None and i < reference:
            rows.append((2 * i + 1, ts, request, None, float("nan"), None, truth))
    return rows


def load(tree: Path) -> ModuleType:
    """``detectors.performance.estimated`` of ``tree``, its package imported afresh (the
    modules it holds stay alive through it when another tree's replace them)."""
    for name in [m for m in sys.modules if m == "detectors" or m.startswith("detectors.")]:
        del sys.modules[name]
    sys.path.insert(0, str(tree))
    try:
        return importlib.import_module("detectors.performance.estimated")
    finally:
        sys.path.remove(str(tree))


def fit_time(est: Any, repeats: int) -> tuple[float, dict[str, Any]]:
    """The fastest of ``repeats`` fits of copies of ``est`` (CPU seconds), and the
    calibration the last one fitted."""
    best = float("inf")
    fitted: Any = None
    for _ in range(repeats):
        fresh = copy.deepcopy(est)
        start = time.process_time()
        fresh._fit()
        best = min(best, time.process_time() - start)
        fitted = fresh
    return best, fitted.calibration.dump()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--code", nargs="+", default=["this=."], metavar="LABEL=DIR")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--reference", type=int, default=10_000)
    parser.add_argument("--window", type=int, default=2000)
    args = parser.parse_args()
    trees = [
        (label, Path(where).resolve()) for label, _, where in (c.partition("=") for c in args.code)
    ]
    modules = {label: load(tree) for label, tree in trees}
    # Each tree's estimator, fed the stream up to the fit once; each timing fits a copy.
    ready: dict[tuple[str, str], Any] = {}
    for model in MODELS:
        rows = stream(model, args.reference, args.window)
        for label, module in modules.items():
            est = module.EstimatedPerformance(window=args.window, reference=args.reference)
            est.observe_rows(rows)
            ready[label, model] = est
    times: dict[tuple[str, str], list[float]] = {key: [] for key in ready}
    for round_ in range(1, args.rounds + 1):
        for model in MODELS:
            fitted = {}
            line = []
            for label, _ in trees:
                seconds, fitted[label] = fit_time(ready[label, model], args.repeats)
                times[label, model].append(seconds)
                line.append(f"{label} {seconds * 1e3:.1f} ms")
            same = all(f == next(iter(fitted.values())) for f in fitted.values())
            print(f"round {round_}, {model}: " + ", ".join(line) + f" (same calibration: {same})")
    for model in MODELS:
        medians = {label: statistics.median(times[label, model]) for label, _ in trees}
        first = medians[trees[0][0]]
        print(
            f"median over {args.rounds} rounds, {model}: "
            + ", ".join(
                f"{label} {m * 1e3:.1f} ms ({first / m:.1f}x)" for label, m in medians.items()
            )
        )


if __name__ == "__main__":
    main()
