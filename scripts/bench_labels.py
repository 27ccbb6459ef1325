"""The durable label join: cost per prediction and memory against the predictions pending.

A store is filled with ``--pending`` predictions waiting for labels (one
model, through the join itself: checkpoints of ``--checkpoint`` predictions),
then ``--predictions`` more go through the join (``ModelLabelJoin``) with a
checkpoint every ``--checkpoint`` predictions, each half of them labelled a
little later. Reported: the join's cost per prediction (remembering it and
writing it at checkpoints), per label (a lookup in the store), and the memory
the join holds at its peak (tracemalloc), first with a small store, then with
the full one: the ratio says whether the cost and memory grow with the
predictions pending.
With ``--features N`` (20 by default; 0 for none) each prediction also gets its
segment key, the bin of each of N features (``segment_rows``, one call per
micro-batch of 2,048 as the pipeline flushes); the small store is also run
without keys, and the ratio says what keys cost.
With ``--old REV`` the same runs are made with the join of git revision REV,
for the old/new ratio in one run: a revision of the batch layout runs in a
process of its own on REV's ``monitor`` and ``detectors`` (``git archive``
into a temporary folder, first on ``PYTHONPATH``), a store of its own format;
a revision from before it (one row per prediction in ``label_pending``) has its
module read with ``git show`` and its table renamed so that opening the store
leaves it alone.

    .venv/bin/python scripts/bench_labels.py --pending 10000000 --old eb92f48
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import tracemalloc
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np

from detectors.base import RowBatch
from detectors.suite.model_detectors import ModelDetectors
from detectors.suite.settings import SuiteSettings
from monitor.pipeline import label_join
from monitor.pipeline.label_join import ModelLabelJoin
from monitor.store.store import Store

T0 = 1.6e9
CACHE_KIB = 0
FLUSH = 2048  # the pipeline's micro-batch


def model_with_features(features: int) -> tuple[ModelDetectors | None, RowBatch | None]:
    """A model whose reference has ``features`` features (3 in 4 numeric), and one
    micro-batch of its rows; (None, None) for none."""
    if not features:
        return None, None
    rng = np.random.default_rng(1)
    labels = np.array([f"v{i}" for i in range(30)], dtype=object)

    def rows(n: int) -> RowBatch:
        numeric = {f"x{j}": rng.normal(size=n) for j in range(features) if j % 4}
        categorical = {f"c{j}": labels[rng.integers(0, 30, n)] for j in range(0, features, 4)}
        return RowBatch(ts=np.zeros(n), numeric=numeric, categorical=categorical)

    detectors = ModelDetectors(SuiteSettings(detectors=("ks",), reference_size=2000))
    detectors.set_reference(rows(2000))
    batch = rows(FLUSH)
    detectors.observe_rows(batch)  # as the pipeline does before keying: its category codes
    return detectors, batch


OLD_TABLE = """
CREATE TABLE IF NOT EXISTS label_pending_old (
    model TEXT NOT NULL, id TEXT NOT NULL, ins INTEGER NOT NULL, ts REAL NOT NULL,
    predicted TEXT, value REAL, score REAL, joined INTEGER NOT NULL DEFAULT 0, segments BLOB,
    PRIMARY KEY (model, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS label_pending_old_ins ON label_pending_old(model, ins);
CREATE INDEX IF NOT EXISTS label_pending_old_ts ON label_pending_old(model, ts);
"""


def checkpoint(store: Store, join: ModelLabelJoin) -> None:
    """A checkpoint of the one model, as the pipeline's (``write_all``: its level 0 kept
    within the budget) where the code has it, else the join's own ``write``."""
    with store.transaction() as db:
        if hasattr(label_join, "write_all") and isinstance(join, ModelLabelJoin):
            label_join.write_all(db, [join])
        else:
            join.write(db)
    join.written()


def join_source(revision: str) -> str:
    return subprocess.run(
        ["git", "show", f"{revision}:monitor/pipeline/label_join.py"],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent,
    ).stdout


def old_join(source: str) -> type[ModelLabelJoin]:
    """``ModelLabelJoin`` of a revision with a label_pending join, on table label_pending_old."""
    module = types.ModuleType("label_join_old")
    sys.modules[module.__name__] = module
    exec(compile(source.replace("label_pending", "label_pending_old"), "old", "exec"), vars(module))
    return module.ModelLabelJoin  # type: ignore[no-any-return]


def fill(path: Path, pending: int, join_class: type[ModelLabelJoin] | None, every: int) -> None:
    """``pending`` stored predictions of model m, as checkpoints would have left them:
    through the join (``join_class`` None: the current one), or the old layout's rows."""
    store = Store(path)
    if join_class is None:
        join = ModelLabelJoin("m", store.db, horizon=30 * 86_400.0, max_pending=10_000_000)
        for start in range(0, pending, every):
            for i in range(start, min(pending, start + every)):
                join.prediction(f"old-{i}", T0 + i * 0.01, "a", 0.3)
            checkpoint(store, join)
        store.close()
        return
    store.close()
    db = sqlite3.connect(path)
    db.executescript(OLD_TABLE)
    batch = 200_000
    for start in range(0, pending, batch):
        rows = (
            ("m", f"old-{i}", i, T0 + i * 0.01, "a", None, 0.3, 0)
            for i in range(start, min(pending, start + batch))
        )
        db.executemany(
            "INSERT INTO label_pending_old (model, id, ins, ts, predicted, value, score, joined) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        db.commit()
    db.execute(
        "INSERT OR REPLACE INTO label_counts (model, inserted, watermark, labels, joined, late, "
        "unmatched, duplicate, evicted, expired, delays) "
        "VALUES ('m', ?, ?, 0, 0, 0, 0, 0, 0, 0, ?)",
        [pending, T0 + pending * 0.01, "[" + ",".join(["0"] * 162) + "]"],
    )
    db.commit()
    db.close()


def run(
    path: Path,
    join_class: type[ModelLabelJoin],
    sizes: tuple[int, int],
    traced: bool,
    clock: Callable[[], float],
    features: int = 0,
) -> tuple[float, float, int]:
    """µs per prediction, µs per label (by ``clock``), peak bytes held by the join (if
    ``traced``: tracemalloc slows every allocation, so timed runs are not traced)."""
    predictions, every = sizes
    store = Store(path)
    if CACHE_KIB:
        store.db.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
    if traced:
        tracemalloc.start()
    join = join_class("m", store.db, horizon=30 * 86_400.0, max_pending=10_000_000)
    detectors, batch = model_with_features(features)
    base = join.inserted
    tag = f"new{base}"  # each run its own ids: the store grows by the runs before
    t_pred = t_label = 0.0
    labels = 0
    for start in range(0, predictions, every):
        stop = min(predictions, start + every)
        # The events' ids and times are made before the clock starts: the join's cost,
        # not the benchmark's (formatting an id costs about as much as remembering it).
        ids = [f"{tag}-{i}" for i in range(start, stop)]
        times = [T0 + (base + i) * 0.01 for i in range(start, stop)]
        # The pipeline's buffered rows (``Row``: model, ts, id, client, features,
        # prediction, score, type, version), micro-batch by micro-batch.
        rows = [
            ("m", times[k], ids[k], None, None, "a", 0.4, "prediction", None)
            for k in range(stop - start)
        ]
        batches = [rows[a : a + FLUSH] for a in range(0, len(rows), FLUSH)]
        by_rows = hasattr(join, "predictions_of_rows")  # else a revision of one call each
        began = clock()
        for buffered in batches:
            if by_rows:
                join.predictions_of_rows(buffered, 0)
            else:
                for k, r in enumerate(buffered):
                    join.prediction(r[2], r[1], r[5], r[6], k)
            if batch is not None:
                join.segment_rows(batch, detectors, 0, True)  # type: ignore[arg-type]
        checkpoint(store, join)
        t_pred += clock() - began
        label_ts = T0 + (base + stop) * 0.01
        began = clock()
        for k in range(0, stop - start, 2):  # half of them labelled, after their checkpoint
            join.label(start + k, ids[k], label_ts, "a")
            labels += 1
        join.take_joined()
        t_label += clock() - began
    peak = tracemalloc.get_traced_memory()[1] if traced else 0
    tracemalloc.stop()
    store.close()
    return t_pred / predictions * 1e6, t_label / labels * 1e6, peak


def measure(
    args: argparse.Namespace, tmp: str, layout: str, join_class: type[ModelLabelJoin] | None
) -> list[tuple[float, float, int]]:
    """The runs of one layout, small store then full; (µs/prediction, µs/label, peak) each."""
    results = []
    joins = join_class or ModelLabelJoin
    for pending in (args.small, args.pending):
        path = Path(tmp) / f"{layout}{pending}.db"
        began = time.perf_counter()
        fill(path, pending, join_class, args.checkpoint)
        filled = time.perf_counter() - began
        sizes = (args.predictions, args.checkpoint)
        if pending == args.small and args.features:
            bare, *_ = run(path, joins, sizes, False, time.process_time)
        keyed = args.features
        wall = run(path, joins, sizes, False, time.perf_counter, keyed)
        per_prediction, per_label, _ = run(path, joins, sizes, False, time.process_time, keyed)
        *_, peak = run(path, joins, sizes, True, time.process_time, keyed)
        if pending == args.small and args.features:
            print(
                f"{layout}: {pending:>11,} pending, no segment keys: {bare:.2f} µs/prediction; "
                f"with keys of {args.features} features {per_prediction:.2f} "
                f"(ratio {per_prediction / bare:.2f})"
            )
        size = sum(f.stat().st_size for f in Path(tmp).glob(f"{path.name}*")) / 1e6
        print(
            f"{layout}: {pending:>11,} pending (store {size:,.0f} MB, filled in {filled:.0f} s): "
            f"{per_prediction:.2f} µs/prediction, {per_label:.2f} µs/label (CPU time; "
            f"wall clock {wall[0]:.2f} and {wall[1]:.2f}), "
            f"join memory peak {peak / 1e6:.1f} MB",
            flush=True,
        )
        results.append((per_prediction, per_label, peak))
        for leftover in Path(tmp).glob(f"{path.name}*"):
            leftover.unlink()
    (p0, l0, m0), (p1, l1, m1) = results
    print(
        f"{layout}: ratios, {args.pending:,} vs {args.small:,} pending: prediction "
        f"{p1 / p0:.2f}, label {l1 / l0:.2f}, memory {m1 / m0:.2f}",
        flush=True,
    )
    return results


def measure_revision(
    args: argparse.Namespace, tmp: str, revision: str
) -> list[tuple[float, float, int]]:
    """The runs of ``measure`` in a process of their own on the code of ``revision``."""
    tree = Path(tmp) / "revision"
    tree.mkdir()
    here = Path(__file__).resolve().parent
    archive = subprocess.run(
        ["git", "archive", revision, "monitor", "detectors"],
        capture_output=True,
        check=True,
        cwd=here.parent,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    options = ["--pending", args.pending, "--small", args.small, "--predictions", args.predictions]
    options += ["--checkpoint", args.checkpoint, "--features", args.features]
    options += ["--cache-mib", args.cache_mib, "--as-layout", "old"]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    child = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), *map(str, options)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        check=True,
        cwd=tmp,
    )
    *lines, results = child.stdout.splitlines()
    print("\n".join(lines), flush=True)
    return [(p, lab, int(m)) for p, lab, m in json.loads(results)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pending", type=int, default=10_000_000)
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--predictions", type=int, default=200_000)
    parser.add_argument("--checkpoint", type=int, default=20_000)
    parser.add_argument("--features", type=int, default=20, help="segment features (0: no keys)")
    parser.add_argument(
        "--cache-mib", type=int, default=0, help="SQLite page cache (default: SQLite's, 2 MiB)"
    )
    parser.add_argument("--old", metavar="REV", help="also run the join of git revision REV")
    parser.add_argument("--as-layout", help=argparse.SUPPRESS)  # the child of --old
    args = parser.parse_args()
    global CACHE_KIB
    CACHE_KIB = args.cache_mib * 1024
    with tempfile.TemporaryDirectory() as tmp:
        if args.as_layout:
            import monitor

            print(f"{args.as_layout}: the code of {Path(monitor.__file__).parent}", flush=True)
            print(json.dumps(measure(args, tmp, args.as_layout, None)))
            return
        new = measure(args, tmp, "new", None)
        if args.old:
            source = join_source(args.old)
            if "label_pending" in source:
                old = measure(args, tmp, "old", old_join(source))
            else:
                old = measure_revision(args, tmp, args.old)
            print(
                f"old/new at {args.pending:,} pending: prediction {old[1][0] / new[1][0]:.1f}, "
                f"label {old[1][1] / new[1][1]:.2f}; at {args.small:,}: prediction "
                f"{old[0][0] / new[0][0]:.1f}, label {old[0][1] / new[0][1]:.2f}"
            )


if __name__ == "__main__":
    main()
