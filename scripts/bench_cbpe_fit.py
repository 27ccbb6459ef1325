"""A model's one-time fits, the code of two trees side by side in one process.

When a model's first performance window closes, ``EstimatedPerformance._fit`` picks
the score's meaning, calibrates it on the reference's labels and draws the bootstrap
windows that fix the alarm limits and bands; when its warm-up ends,
``ModelDetectors._build_reference`` builds every feature's reference and fits the
detectors on them. This times each (CPU time, the fastest of ``--repeats`` on copies
of the same state) on references of 10,000 events, with each tree's code loaded in
this one process, alternating, and checks that the trees fit the same (every figure
of the calibration, every field of the detectors' dumped state equal):

    git worktree add --detach /tmp/cbpe-before main
    .venv/bin/python scripts/bench_cbpe_fit.py --code before=/tmp/cbpe-before after=.

The CBPE models: ``daemon``, scores uniform on [0, 1] to 4 decimals and no labels
(as ``bench_daemon.py`` sends); ``binary``, a fraud score (Beta, 3 decimals) with
every label; ``multiclass``, probabilities of 4 classes (Dirichlet) with every
label. ``reference``: the detectors at the defaults on ``bench_daemon.py``'s events
(16 numeric features, 4 categorical, a caller, a score and a prediction).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import importlib
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

Row = tuple[int, float, str | None, str | None, float, dict[str, float] | None, str | None]
MODELS = ("daemon", "binary", "multiclass")
CATEGORIES = [["a", "b", "c", "d"], ["x", "y"], ["red", "green", "blue"], ["n", "s", "e", "w"]]


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


def load(tree: Path) -> tuple[ModuleType, ModuleType, ModuleType]:
    """``detectors.performance.estimated``, ``detectors.suite.model_detectors`` and
    ``detectors.base`` of ``tree``, its package imported afresh (the modules they hold
    stay alive through them when another tree's replace them in ``sys.modules``)."""
    for name in [m for m in sys.modules if m == "detectors" or m.startswith("detectors.")]:
        del sys.modules[name]
    sys.path.insert(0, str(tree))
    try:
        names = ("performance.estimated", "suite.model_detectors", "base")
        estimated, suite, base = (importlib.import_module(f"detectors.{n}") for n in names)
        return estimated, suite, base
    finally:
        sys.path.remove(str(tree))


def reference_batches(base: ModuleType, events: int, batch: int, seed: int = 1) -> list[Any]:
    """``bench_daemon.py``'s events of one model as ``RowBatch`` es of ``base``."""
    rng = np.random.default_rng(seed)
    numeric = np.round(rng.normal(size=(events, 16)), 4)
    cats = [np.array(c, dtype=object)[rng.integers(len(c), size=events)] for c in CATEGORIES]
    score = np.round(rng.random(events), 4)
    prediction = np.where(score > 0.5, "yes", "no").astype(object)
    client = np.array([f"client-{i % 37}" for i in range(events)], dtype=object)
    ts = 1_793_491_200 + np.arange(events) * 0.01
    out = []
    for lo in range(0, events, batch):
        hi = min(lo + batch, events)
        out.append(
            base.RowBatch(
                ts[lo:hi],
                {f"x{j}": numeric[lo:hi, j].copy() for j in range(16)},
                {f"c{j}": c[lo:hi] for j, c in enumerate(cats)},
                score=score[lo:hi],
                prediction=prediction[lo:hi],
                client=client[lo:hi],
            )
        )
    return out


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """The cyclic collector off (after a full collection): the copies and both trees'
    states are many objects, and a collection's pass over them would land in some
    timings and not others."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def fastest(state: Any, step: Callable[[Any], object], repeats: int) -> tuple[float, Any]:
    """The fastest of ``repeats`` runs of ``step`` on copies of ``state`` (CPU seconds),
    and the copy the last one changed."""
    best = float("inf")
    fresh: Any = None
    for _ in range(repeats):
        fresh = copy.deepcopy(state)
        with _no_gc():
            start = time.process_time()
            step(fresh)
            best = min(best, time.process_time() - start)
    return best, fresh


def fit_time(est: Any, repeats: int) -> tuple[float, Any]:
    """A CBPE fit's time, and the calibration it fitted (as JSON: floats by ``repr``,
    so equal text is equal bits, NaN and -0.0 included)."""
    seconds, fitted = fastest(est, lambda e: e._fit(), repeats)
    return seconds, json.dumps(fitted.calibration.dump(), sort_keys=True)


def build_time(ready: tuple[Any, Any], repeats: int) -> tuple[float, Any]:
    """A reference build's time: detectors one event short of their reference, given
    that event. And the detectors' state after it."""
    md, last = ready
    seconds, fitted = fastest(md, lambda m: m.observe_rows(last), repeats)
    return seconds, json.dumps(fitted.dump(), sort_keys=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--code", nargs="+", default=["this=."], metavar="LABEL=DIR")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--reference", type=int, default=10_000)
    parser.add_argument("--window", type=int, default=2000)
    parser.add_argument("--only", nargs="+", choices=(*MODELS, "reference"), metavar="KIND")
    args = parser.parse_args()
    trees = [
        (label, Path(where).resolve()) for label, _, where in (c.partition("=") for c in args.code)
    ]
    modules = {label: load(tree) for label, tree in trees}
    # Each tree's state, fed up to the fit once; each timing fits a copy.
    ready: dict[tuple[str, str], Any] = {}
    for model in MODELS:
        rows = stream(model, args.reference, args.window)
        for label, (estimated, _, _) in modules.items():
            est = estimated.EstimatedPerformance(window=args.window, reference=args.reference)
            est.observe_rows(rows)
            ready[label, model] = est
    for label, (_, suite, base) in modules.items():
        batches = reference_batches(base, args.reference, 500)
        md = suite.ModelDetectors()
        last = batches[-1]
        for batch in batches[:-1]:
            md.observe_rows(batch)
        short = len(last) - 1  # all but the reference's last event, then that one
        md.observe_rows(base.RowBatch(**_fields(last, 0, short)))
        ready[label, "reference"] = (md, base.RowBatch(**_fields(last, short, len(last))))
    kinds = args.only or (*MODELS, "reference")
    times: dict[tuple[str, str], list[float]] = {key: [] for key in ready}
    for round_ in range(1, args.rounds + 1):
        for kind in kinds:
            fitted = {}
            line = []
            # Each round in the other order: a tree timed second ran slower, whichever.
            for label, _ in trees if round_ % 2 else trees[::-1]:
                timer = build_time if kind == "reference" else fit_time
                seconds, fitted[label] = timer(ready[label, kind], args.repeats)
                times[label, kind].append(seconds)
                line.append(f"{label} {seconds * 1e3:.1f} ms")
            same = all(f == next(iter(fitted.values())) for f in fitted.values())
            print(f"round {round_}, {kind}: " + ", ".join(line) + f" (same fit: {same})")
    for kind in kinds:
        medians = {label: statistics.median(times[label, kind]) for label, _ in trees}
        first = medians[trees[0][0]]
        print(
            f"median over {args.rounds} rounds, {kind}: "
            + ", ".join(
                f"{label} {m * 1e3:.1f} ms ({first / m:.1f}x)" for label, m in medians.items()
            )
        )


def _fields(batch: Any, start: int, stop: int) -> dict[str, Any]:
    """The keyword arguments of a ``RowBatch`` of events [start, stop) of ``batch``."""
    return {
        "ts": batch.ts[start:stop],
        "numeric": {k: v[start:stop] for k, v in batch.numeric.items()},
        "categorical": {k: v[start:stop] for k, v in batch.categorical.items()},
        "score": batch.score[start:stop],
        "prediction": batch.prediction[start:stop],
        "client": batch.client[start:stop],
    }


if __name__ == "__main__":
    main()
